/**
 * The programmatic surface of sos: the same core the CLI and MCP tools call. Benchmarks and
 * embedding applications import this (`dist/index.js`); the CLI never does.
 */
export type { Caller } from './core/auth/caller.js';
export { resolveCaller } from './core/auth/caller.js';
export { openBusContext } from './core/bus/context.js';
export { openBus } from './core/bus/open.js';
export { dropRedisProject } from './core/bus/redis-drop.js';
export type { Bus, BusCapabilities } from './core/bus/port.js';
export * from './core/bus/service.js';
export type { Envelope, InboxItem, Target } from './core/bus/types.js';
export { resolveConfig } from './core/config/resolve.js';
export * from './core/errors.js';
export { newId } from './core/ids.js';
export { openStore, parseStoreTarget } from './core/store/open.js';
export type { Store } from './core/store/port.js';
export * from './core/tasks/service.js';
export type { Task, TaskStatus } from './core/tasks/types.js';
export { cosine, LocalEmbedder, toBlob } from './core/memory/embedder.js';
export { memoryOn, openEmbedder } from './core/memory/open.js';
export type { Memory } from './core/memory/port.js';
export * from './core/memory/service.js';
export type { Engram } from './core/memory/types.js';
export { MOTOR_METHODS, runMotor } from './core/brain/motor.js';
export type { MotorVerdict, Proposal } from './core/brain/motor.js';
export * from './core/economy/service.js';
export { builtinPrices, costMicros, findPrice, loadPrices, modelCandidates } from './core/economy/prices.js';
export type { ModelPrice, PriceTable } from './core/economy/prices.js';
export type { RecordResult, ReportFilter, UsageEvent, UsageInput, UsageReport, UsageRow, UsageSource } from './core/economy/types.js';
export { claimBlocks, listBudgets, setBudget, showBudget } from './core/economy/budgets.js';
export { importTranscripts } from './core/economy/import.js';
export { usageWindows } from './core/economy/quota.js';
export { listCycles, runCycle } from './core/brain/cycle.js';
export type { BrainContext, CycleRecord, Trigger } from './core/brain/cycle.js';
export { routeEntries, MODEL_TIERS } from './core/brain/tiers.js';
export { agentRoutability, routeTasks } from './core/tasks/route.js';
