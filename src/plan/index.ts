/** The `plan` use case: verify, compile, compare with a base, report. */
export { runPlan } from './plan.js';
export { planToJson, renderPlan } from './report.js';
export type { PlanOptions, PlanOutcome } from './plan.js';
export type { PlanAgent, PlanBase, PlanChange, PlanReport, PlanSignature, PlanWarning } from './report.js';
