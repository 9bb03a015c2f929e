// Types of vue.js. Checked by tests/js/types.ts with `tsc --noEmit`.
import type { MaybeRefOrGetter, Ref, ShallowRef } from 'vue';
import type { Data, DuplexSocket, Transport } from './duplex.js';
import type { UseDuplexOptions, RetryInfo } from './react.js';

export type { UseDuplexOptions, RetryInfo };

export interface UseDuplexRefs<M = any> {
  readyState: Ref<0 | 1 | 2 | 3>;
  lastMessage: ShallowRef<M | null>;
  error: ShallowRef<Event | Error | null>;
  socket: ShallowRef<DuplexSocket | null>;
  retry: ShallowRef<RetryInfo | null>;
  /** 'websocket' or 'http' (the fallback) while open; null otherwise. */
  transport: Ref<Transport | null>;
  send: (data: Data | object) => boolean;
  request: <T = any>(data: any, options?: { timeout?: number; signal?: AbortSignal }) => Promise<T>;
}

/** Call inside setup() or an effectScope(); a changing url swaps the socket. */
export declare function useDuplex<M = any>(
  url: MaybeRefOrGetter<string | string[] | null | undefined>, options?: UseDuplexOptions<M>): UseDuplexRefs<M>;
export default useDuplex;
