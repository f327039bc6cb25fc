import type { Caller } from '../auth/caller.js';
import { OperationFailed, UsageError } from '../errors.js';
import { type MetricFamily, type MetricsParts, metricFamilies, projectMetrics } from '../metrics.js';
import { errorBody, errorReply } from './status.js';
import type { HttpHandler } from './types.js';

/**
 * `GET /metrics`: the caller's project in the Prometheus text exposition format 0.0.4, the one
 * every Prometheus-compatible scraper reads and `promtool check metrics` checks. The server has
 * authenticated the caller; its token decides the project, so a token never sees another
 * project's samples.
 */

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value inside double quotes: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** `# HELP` text runs to the end of the line: backslash and line feed escaped (quotes are not). */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go's float syntax as the format wants it: integers without a fraction, the three specials spelled out. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function labelSet(labels: Record<string, string>, family: string): string {
  const names = Object.keys(labels);
  if (names.length === 0) return '';
  for (const name of names) {
    // `__` names are reserved for Prometheus itself.
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new OperationFailed(`metric ${family}: label name "${name}" is not valid in the exposition format`);
  }
  return `{${names.map((n) => `${n}="${escapeLabelValue(labels[n]!)}"`).join(',')}}`;
}

/**
 * The families as exposition text, one `# HELP` and `# TYPE` per family and its samples right
 * after. A null sample is left out (a ratio with no denominator has no value, and NaN would read
 * as one); a family left with no sample is left out whole, since HELP and TYPE with nothing under
 * them only tell a scraper about a series that does not exist. A name or label the format cannot
 * carry, a family named twice, or two samples with one label set throw: each would make the whole
 * scrape invalid, so it is a bug to surface, not a line to drop.
 */
export function renderExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new OperationFailed(`metric name "${f.name}" is not valid in the exposition format`);
    if (seen.has(f.name)) throw new OperationFailed(`metric ${f.name} is given twice`);
    seen.add(f.name);
    const samples = f.samples.filter((s): s is typeof s & { value: number } => s.value !== null);
    if (samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    const sets = new Set<string>();
    for (const s of samples) {
      const labels = labelSet(s.labels, f.name);
      if (sets.has(labels)) throw new OperationFailed(`metric ${f.name} has two samples labelled ${labels || '{}'}`);
      sets.add(labels);
      lines.push(`${f.name}${labels} ${formatValue(s.value)}`);
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** The caller's project as exposition text: what `/metrics` serves and `sos metrics --prometheus` prints. */
export async function projectExposition(parts: MetricsParts, caller: Caller): Promise<string> {
  return renderExposition(metricFamilies(await projectMetrics(parts, caller)));
}

export const metricsHandler: HttpHandler = async (deps, request) => {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return { status: 405, headers: { allow: 'GET, HEAD' }, body: errorBody(new UsageError(`${request.method} is not allowed on /metrics`, { hint: 'scrape it with GET' })) };
  }
  try {
    const text = await projectExposition({ store: deps.store, bus: deps.bus, repo: deps.life.repo }, request.caller);
    return { status: 200, body: text, contentType: EXPOSITION_CONTENT_TYPE };
  } catch (err) {
    return errorReply(err);
  }
};
