// Types of http_socket.js: a WebSocket over duplex's HTTP session transport
// (docs/fallback.md). Checked through duplex.d.ts by `tsc --noEmit -p tests/js`.

export interface HttpSocketOptions {
  /**
   * How the server's frames come down: 'stream' (Server-Sent Events), 'poll'
   * (long polls), or 'auto' (default): stream, and poll for good when a proxy
   * holds the stream.
   */
  mode?: 'auto' | 'stream' | 'poll';
  /** ms to wait for the server's close frame after close() (default 5000). */
  closeTimeout?: number;
  /** The fetch function (default globalThis.fetch). */
  fetch?: typeof fetch;
}

/** The WebSocket surface over HTTP requests; DuplexSocket uses it as its 'http' transport. */
export declare class HttpSocket extends EventTarget {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  constructor(url: string | URL, protocols?: string | string[], options?: HttpSocketOptions);

  readonly url: string;
  readonly readyState: 0 | 1 | 2 | 3;
  readonly protocol: string;
  /** Always '' (permessage-deflate is not negotiated on a session). */
  readonly extensions: string;
  binaryType: BinaryType;
  /** Payload bytes handed to send() that the server has not confirmed yet. */
  readonly bufferedAmount: number;
  /** How the down bytes currently arrive. */
  readonly mode: 'stream' | 'poll';

  onopen: ((this: HttpSocket, ev: Event) => any) | null;
  onmessage: ((this: HttpSocket, ev: MessageEvent) => any) | null;
  onclose: ((this: HttpSocket, ev: CloseEvent) => any) | null;
  onerror: ((this: HttpSocket, ev: Event) => any) | null;

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

/** One masked client frame (RFC 6455): used by HttpSocket, exported for tests. */
export declare function encodeFrame(opcode: number, payload: Uint8Array, options?: { fin?: boolean; mask?: Uint8Array }): Uint8Array;
/** The payload of a close frame: code (big-endian) and UTF-8 reason; empty for 1005 or none. */
export declare function closePayload(code?: number, reason?: string): Uint8Array;

export type ServerFrameEvent =
  | { type: 'text'; data: string }
  | { type: 'binary' | 'ping' | 'pong'; data: Uint8Array }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; code: number; reason: string };

/** Parses server frames from bytes delivered in any pieces. */
export declare class FrameParser {
  constructor(options?: { maxMessage?: number });
  push(bytes: Uint8Array): ServerFrameEvent[];
}

/** Splits a Server-Sent Events body into its base64-decoded data lines. */
export declare class SseReader {
  push(text: string): Uint8Array[];
}

export default HttpSocket;
