/**
 * Message ids.
 *
 * - `system:c0:0`: the hello and its reply.
 * - `rpc:CLIENTID:N`: a call and its reply.
 * - `publish:TOPIC:N`: a published message (Python always sends N = 0).
 */

export const HELLO_ID = 'system:c0:0';
export const HELLO_METHOD = 'wslink.hello';
export const ATTACHMENT_METHOD = 'wslink.binary.attachment';
export const WSLINK_VERSION = '1.0';

/**
 * The npm client's routing pattern. Ids of this package's own messages always
 * match it; incoming ids are parsed by {@link parseId}, which is more lenient
 * (it also accepts topics with characters outside `\w` and `.`).
 */
export const NPM_ID_PATTERN = /^(rpc|publish|system):(\w+(?:\.\w+)*):(?:\d+)$/;

/** Our extension: declare a subscription (see PROTOCOL.md §8). */
export const SUBSCRIBE_METHOD = 'wslink.subscribe';
export const UNSUBSCRIBE_METHOD = 'wslink.unsubscribe';
export const CAPABILITY_SUBSCRIPTIONS = 'subscriptions';

export function systemId(clientId: string, n: number): string {
  return `system:${clientId}:${n}`;
}

export function rpcId(clientId: string, n: number): string {
  return `rpc:${clientId}:${n}`;
}

export type ParsedId =
  | { type: 'rpc'; clientId: string; n: number }
  | { type: 'publish'; topic: string; n: number }
  | { type: 'system'; name: string; n: number };

const ID_PATTERN = /^(rpc|publish|system):(.+):(\d+)$/s;

/**
 * Splits an id into its kind, middle part and counter. The middle part is
 * everything between the first and the last colon, so a topic may contain
 * colons and any other character. Returns `null` for anything else.
 */
export function parseId(id: string): ParsedId | null {
  const m = ID_PATTERN.exec(id);
  if (!m) return null;
  const kind = m[1] as 'rpc' | 'publish' | 'system';
  const middle = m[2] as string;
  const n = Number(m[3]);
  switch (kind) {
    case 'rpc':
      return { type: 'rpc', clientId: middle, n };
    case 'publish':
      return { type: 'publish', topic: middle, n };
    default:
      return { type: 'system', name: middle, n };
  }
}
