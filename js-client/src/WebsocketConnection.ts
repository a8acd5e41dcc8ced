/** `import WebsocketConnection from 'wslink-client/WebsocketConnection'` (npm: `wslink/src/WebsocketConnection`). */
import { WebsocketConnection } from './compat.js';

export default WebsocketConnection;
export { WebsocketConnection };
export const newInstance = WebsocketConnection.newInstance;
export type { WebsocketConnectionOptions, WebsocketSession, Subscription, SubscriberInfo } from './compat.js';
