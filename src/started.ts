/**
 * When akv's own code started, in ms since the process started: src/cli/main.ts imports this module
 * first, so the value is taken before anything else of akv is loaded (src/agent/startup.ts
 * reports it).
 */
export const AKV_MAIN_STARTED_MS = process.uptime() * 1000;
