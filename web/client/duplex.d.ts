// Types of duplex.js. Checked by tests/js/types.ts with `tsc --noEmit`.

import type { HttpSocketOptions } from './http_socket.js';
export type { HttpSocketOptions } from './http_socket.js';

/** How a connection travels: a WebSocket, or duplex's HTTP session transport (HttpSocket). */
export type Transport = 'websocket' | 'http';

export type Data = string | ArrayBufferLike | Blob | ArrayBufferView;

export interface HeartbeatOptions {
  /** ms between application pings while OPEN (default 20000). */
  interval?: number;
  /** ms to wait for any message after a ping before declaring the peer dead (default 10000). */
  timeout?: number;
  /** Text sent as the ping (default "ping", which `duplex serve` answers). */
  ping?: string;
  /** Text that answers it; swallowed while a ping is outstanding (default "pong"). */
  pong?: string;
}

export interface ReconnectOptions {
  /** First backoff ceiling in ms (default 500). */
  base?: number;
  /** Growth of the ceiling per attempt (default 2). */
  factor?: number;
  /** Largest ceiling in ms (default 30000). The delay is random in [0, ceiling): full jitter. */
  cap?: number;
  /** Consecutive failed attempts before giving up (default Infinity). */
  maxAttempts?: number;
  /** ms a connection must stay open to reset the attempt count (default 5000). */
  resetAfter?: number;
  /** Close codes after which no reconnect happens (default 1002, 1003, 1007-1010, 4401, 4403). */
  finalCodes?: number[];
}

export interface QueueOptions {
  /** Most messages held while not OPEN (default 1000). */
  maxMessages?: number;
  /** Most bytes held while not OPEN (default 1 MiB). */
  maxBytes?: number;
  /**
   * When full: 'throw' (default) — send() throws a QuotaExceededError;
   * 'drop-oldest' — the oldest queued messages make room ('drop' events);
   * 'drop-newest' — the new message is discarded, send() returns false ('drop' event).
   */
  overflow?: 'throw' | 'drop-oldest' | 'drop-newest';
}

export interface DuplexSocketOptions {
  /** The WebSocket class to use (default globalThis.WebSocket); tests inject a fake. */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
  /** The class of the 'http' transport (default HttpSocket from http_socket.js); tests inject a fake. */
  HttpSocket?: new (url: string, protocols?: string | string[], options?: HttpSocketOptions) => WebSocket | EventTarget;
  /**
   * Transports an attempt may use, in this order (default ['websocket', 'http'];
   * ['websocket'] when a WebSocket class is given without an HttpSocket class).
   */
  transports?: Transport[];
  /**
   * ms an open WebSocket has to deliver its first message before it is taken
   * for a proxy's fake upgrade and the attempt moves to HTTP (default 5000; 0:
   * only a failed handshake falls back).
   */
  fallbackTimeout?: number;
  /** While on HTTP, ms between WebSocket probes, doubling up to 5 min (default 30000; 0: never). */
  upgradeProbe?: number;
  /** The longest wait between probes, in ms (default 300000). */
  upgradeProbeMax?: number;
  /** Options of the HttpSocket (mode, closeTimeout, fetch). */
  http?: HttpSocketOptions;
  /** false disables the application heartbeat. */
  heartbeat?: HeartbeatOptions | boolean;
  /** false: never reconnect (a plain WebSocket with a queue). */
  reconnect?: ReconnectOptions | boolean;
  /** false: send() while not OPEN throws InvalidStateError, as WebSocket does. */
  queue?: QueueOptions | boolean;
  /** ms an attempt may take to open before it is abandoned (default 10000; 0: none). */
  connectTimeout?: number;
  /** Default timeout of request() in ms (default 10000). */
  requestTimeout?: number;
  binaryType?: BinaryType;
  /** Do not connect until open() is called; send() queues meanwhile. */
  startClosed?: boolean;
  /** Source of randomness for the jitter, in [0, 1) (default Math.random). */
  random?: () => number;
  /** Name of the correlation field of the default request encoding (default "id"). */
  idKey?: string;
  /** Encodes a request; replaces the default JSON `{...data, id}`. */
  encodeRequest?: (id: number, data: any) => Data;
  /** Returns the request id a text message answers, or undefined; the reply then resolves with the raw text. */
  matchReply?: (data: string) => number | undefined | null;
  /** Where online/offline events come from (default window; null: ignore them). */
  window?: EventTarget & { navigator?: { onLine?: boolean } } | null;
  /** Where visibilitychange comes from (default document; null: ignore it). */
  document?: EventTarget & { visibilityState?: string } | null;
}

export interface DuplexCloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  /** true when a reconnect follows; false for the final close. */
  readonly willReconnect: boolean;
}

export interface DuplexConnectingEvent extends Event {
  readonly attempt: number;
  readonly url: string;
  readonly transport: Transport;
}

export interface DuplexReconnectingEvent extends Event {
  readonly attempt: number;
  /** ms until the attempt, or null when it waits for the browser to be online. */
  readonly delay: number | null;
  readonly url: string;
  /** 'fallback': the same attempt goes on over the next transport (delay 0). */
  readonly reason: 'backoff' | 'offline' | 'fallback';
  /** With 'fallback': the transport tried next. */
  readonly transport?: Transport;
}

export interface DuplexTransportEvent extends Event {
  /** The transport of the connection about to dispatch 'open'. */
  readonly transport: Transport;
  /** That of the previous open connection, null before the first. */
  readonly previous: Transport | null;
}

export interface DuplexDropEvent extends Event {
  readonly data: Data;
  readonly reason: string;
}

export interface DuplexSocketEventMap {
  connecting: DuplexConnectingEvent;
  open: Event;
  message: MessageEvent;
  close: DuplexCloseEvent;
  error: Event;
  reconnecting: DuplexReconnectingEvent;
  drop: DuplexDropEvent;
  transport: DuplexTransportEvent;
}

export declare class DuplexSocket extends EventTarget {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  constructor(url: string | URL | Array<string | URL>, protocols?: string | string[], options?: DuplexSocketOptions);
  constructor(url: string | URL | Array<string | URL>, options?: DuplexSocketOptions);

  /** The URL of the current (or next) attempt. */
  readonly url: string;
  readonly urls: string[];
  /** CONNECTING also while waiting to reconnect; CLOSED only at the end. */
  readonly readyState: 0 | 1 | 2 | 3;
  readonly protocol: string;
  readonly extensions: string;
  binaryType: BinaryType;
  /** The socket's own bufferedAmount plus the bytes in the offline queue. */
  readonly bufferedAmount: number;
  readonly queuedMessages: number;
  readonly attempt: number;
  readonly pendingRequests: number;
  /** How the current connection (or attempt) travels; null between attempts. */
  readonly transport: Transport | null;

  onopen: ((this: DuplexSocket, ev: Event) => any) | null;
  onmessage: ((this: DuplexSocket, ev: MessageEvent) => any) | null;
  onclose: ((this: DuplexSocket, ev: DuplexCloseEvent) => any) | null;
  onerror: ((this: DuplexSocket, ev: Event) => any) | null;
  onconnecting: ((this: DuplexSocket, ev: DuplexConnectingEvent) => any) | null;
  onreconnecting: ((this: DuplexSocket, ev: DuplexReconnectingEvent) => any) | null;
  ondrop: ((this: DuplexSocket, ev: DuplexDropEvent) => any) | null;
  ontransport: ((this: DuplexSocket, ev: DuplexTransportEvent) => any) | null;

  /** Sends now when OPEN, else queues; false when discarded. Throws QuotaExceededError when the queue is full (overflow 'throw'). */
  send(data: Data): boolean;
  /** Closes for good: no reconnect; the queue is discarded, pending requests rejected. */
  close(code?: number, reason?: string): void;
  /** Starts after startClosed or close(); no-op while active. */
  open(): void;
  /** Drops the current connection and connects again now. */
  reconnect(): void;
  /** Sends data with a fresh id; resolves with the reply carrying the same id. */
  request<T = any>(data: any, options?: { timeout?: number; signal?: AbortSignal }): Promise<T>;

  addEventListener<K extends keyof DuplexSocketEventMap>(
    type: K, listener: (this: DuplexSocket, ev: DuplexSocketEventMap[K]) => any,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof DuplexSocketEventMap>(
    type: K, listener: (this: DuplexSocket, ev: DuplexSocketEventMap[K]) => any,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

export declare const CONNECTING: 0;
export declare const OPEN: 1;
export declare const CLOSING: 2;
export declare const CLOSED: 3;
export declare const FINAL_CODES: readonly number[];
export default DuplexSocket;
