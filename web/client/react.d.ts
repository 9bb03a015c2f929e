// Types of react.js. Checked by tests/js/types.ts with `tsc --noEmit`.
import type { Data, DuplexSocket, DuplexSocketOptions, DuplexCloseEvent, DuplexReconnectingEvent, Transport } from './duplex.js';

export interface UseDuplexOptions<M = any> extends Omit<DuplexSocketOptions, 'startClosed'> {
  protocols?: string | string[];
  /** Parse incoming text as JSON (lastMessage, onMessage) and stringify outgoing objects. */
  json?: boolean;
  onOpen?: (ev: Event) => void;
  onMessage?: (data: M, ev: MessageEvent) => void;
  onClose?: (ev: DuplexCloseEvent) => void;
  onError?: (ev: Event) => void;
  onReconnecting?: (ev: DuplexReconnectingEvent) => void;
}

export interface UseDuplexResult<M = any> {
  readyState: 0 | 1 | 2 | 3;
  /** Stable identity. Queues while not OPEN; false when there is no socket or it was discarded. */
  send: (data: Data | object) => boolean;
  /** Stable identity. Rejects when there is no socket. */
  request: <T = any>(data: any, options?: { timeout?: number; signal?: AbortSignal }) => Promise<T>;
  lastMessage: M | null;
  /** The last error event, parse error or unclean close; null again after open. */
  error: Event | Error | null;
  socket: DuplexSocket | null;
  /** While waiting to reconnect: attempt, delay in ms (null: until online), at = Date.now() when scheduled. */
  retry: RetryInfo | null;
  /** 'websocket' or 'http' (the fallback) while open; null otherwise. */
  transport: Transport | null;
}

export interface RetryInfo {
  attempt: number;
  delay: number | null;
  at: number;
}

/** One DuplexSocket per (url, protocols); null url: no socket. */
export declare function useDuplex<M = any>(
  url: string | string[] | null | undefined, options?: UseDuplexOptions<M>): UseDuplexResult<M>;
export default useDuplex;
