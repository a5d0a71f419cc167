export type { StateOfTheUnionAddress } from './demo-assets.js';
export { demoModelPath, stateOfTheUnionAddresses } from './demo-assets.js';
