/**
 * wslink-client: a TypeScript client for wslink servers (Kitware's Python
 * wslink 2.x / 1.x, or this project's Rust server).
 *
 * Two APIs over one implementation:
 * - modern: `connect({url, secret, protocol, reconnect, ...})` -> {@link WslinkClient}
 * - npm wslink compatible: `WebsocketConnection.newInstance({urls, secret})`,
 *   `SmartConnect.newInstance({config})`.
 */
export { connect, WslinkClient, DEFAULT_SECRET } from './connection.js';
export type {
  ClientEvents,
  ClientOptions,
  ConnectionState,
  DisconnectInfo,
  ReadyInfo,
  ReconnectingInfo,
  ReconnectOptions,
  Subscriber,
} from './connection.js';
export type { CallOptions } from './session.js';
export { ErrorCode, WslinkError, isWslinkError } from './errors.js';
export type { ErrorCodeValue, ErrorKind } from './errors.js';
export type { Logger } from './logger.js';
export type { CloseInfo, SocketLike, WebSocketConstructor } from './socket.js';
export type { BinaryInput } from './binary.js';
export type { Int64Mode } from './json.js';

export { WebsocketConnection, SmartConnect, defaultSessionURL, defaultSessionManagerURL } from './compat.js';
export type {
  CompatSubscriber,
  ConfigDecorator,
  EventSubscription,
  SmartConnectConfig,
  SmartConnectOptions,
  Subscription,
  SubscriberInfo,
  WebsocketConnectionOptions,
  WebsocketSession,
} from './compat.js';
export type { SmartConnect as SmartConnectInstance, WebsocketConnection as WebsocketConnectionInstance } from './compat.js';

// Lower level: the wire formats, for tools and tests.
export { createCodec, DEFAULT_ATTACHMENT_LIMITS } from './codec.js';
export type { AttachmentLimits, BinaryType, Codec, CodecOptions, Frame, Generation, Limits } from './codec.js';
export { chunkMessage, decodeHeader, encodeHeader, Reassembler, DEFAULT_MAX_MSG_SIZE, DEFAULT_REASSEMBLY_LIMITS, HEADER_LENGTH } from './chunking.js';
export type { ChunkHeader, ReassemblyLimits } from './chunking.js';
export { request, helloRequest, attachmentHeader, classify } from './envelope.js';
export type { AttachmentHeader, ErrorBody, RpcError, ErrorEnvelope, HelloResult, Incoming, RequestEnvelope, ResultEnvelope } from './envelope.js';
export { HELLO_ID, NPM_ID_PATTERN, parseId, rpcId } from './ids.js';
export type { ParsedId } from './ids.js';
export { parseJson, stringifyJson } from './json.js';
