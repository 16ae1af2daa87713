/** The agent wire protocol (docs/protocol.md): import from here. */
export * from './constants.js';
export * from './errors.js';
export * from './frame.js';
export * from './fields.js';
export type * from './report.js';
