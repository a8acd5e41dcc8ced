/** `import SmartConnect from 'wslink-client/SmartConnect'` (npm: `wslink/src/SmartConnect`). */
import { SmartConnect } from './compat.js';

export default SmartConnect;
export { SmartConnect };
export const newInstance = SmartConnect.newInstance;
export type { SmartConnectConfig, SmartConnectOptions, ConfigDecorator } from './compat.js';
