// Synthetic agent memories for bench/memory.mjs: 200 topics (40 systems × 5 facets). Each topic
// keeps its own subset of its facet's symptoms, causes and fixes, its own hosts, files and ticket
// prefix; engrams fill 15 templates (3 per kind) plus 0-2 detail clauses with agents, numbers,
// regions, versions and dates, so they cluster by topic (and by system and facet) without being
// copies of each other. Queries are questions about one topic in other words than the templates.
// Deterministic: the same seed gives the same corpus.

export const DAY = 86_400_000;

/** Small deterministic PRNG (mulberry32). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const AGENTS = ['kasra', 'codex', 'gemini', 'river', 'atlas', 'juno', 'mira', 'otto', 'sable', 'tarn', 'vega', 'wren'];

const SYSTEMS = [
  'payments api', 'billing worker', 'auth service', 'search indexer', 'checkout frontend', 'notification queue', 'image resizer',
  'report generator', 'user profile service', 'inventory sync', 'shipping calculator', 'fraud scorer', 'feature flag service',
  'metrics pipeline', 'log shipper', 'nightly backup job', 'cdn edge config', 'dns zone manager', 'kubernetes ingress', 'postgres primary',
  'redis cache', 'kafka consumer', 'email sender', 'sms gateway', 'webhook dispatcher', 'rate limiter', 'session store', 'graphql gateway',
  'mobile app build', 'ci pipeline', 'docs site', 'admin dashboard', 'recommendation model', 'translation service', 'audit log',
  'permissions service', 'file upload service', 'pdf renderer', 'cron scheduler', 'warehouse loader',
];

const FACETS = {
  latency: {
    word: 'performance',
    symptoms: ['p99 latency spiked to {n} ms', 'requests started timing out after {s} s', 'response times doubled under peak load', 'the slow query log filled with {n} entries', 'throughput dropped to {n} requests per second', 'the dashboard showed queueing delays of {s} seconds', 'cpu sat at {p}% on every replica', 'the load balancer marked {c} backends slow'],
    causes: ['an N+1 query in the list endpoint', 'a missing index on the lookup table', 'connection pool exhaustion at {c} connections', 'cold caches after the restart', 'long garbage collection pauses', 'a synchronous call to the geo lookup', 'lock contention on the counters row', 'an unpaginated export request'],
    fixes: ['added a composite index', 'batched the lookups into one query', 'raised the pool size to {c}', 'warmed the cache on boot', 'moved the slow call behind a queue', 'tuned the heap to {n} MB', 'cached the hot keys for {s} seconds', 'paginated the export at {n} rows'],
    todos: ['load test at twice the traffic', 'add a latency alert on p99', 'profile the remaining hot path', 'compare against last month'],
    questions: ['why was the {system} so slow', 'what made {system} requests time out', 'how did we speed up the {system}', 'performance trouble in {system}, what fixed it', '{system} slowness root cause'],
  },
  deploy: {
    word: 'release',
    symptoms: ['the rollout stalled at {p}% of pods', 'the canary failed its health checks', 'the release pipeline went red on step {c}', 'a bad migration blocked the deploy', 'the rollback took {c} minutes', 'two versions served traffic for an hour', 'new pods crash looped {c} times', 'the deploy job hung waiting for a lock'],
    causes: ['a missing environment variable', 'an image tag that pointed at the old build', 'a readiness probe with a {c} s timeout', 'a schema migration that locked the table', 'expired registry credentials', 'a helm chart default that overrode replicas', 'a stale terraform state lock', 'a base image without the ca certificates'],
    fixes: ['pinned the image digest', 'split the migration into two steps', 'added the variable to the helm values', 'lengthened the readiness probe', 'rotated the registry token', 'set replicas explicitly in the chart', 'released the state lock and added a timeout', 'rebuilt on a base image with certificates'],
    todos: ['write a rollback runbook', 'automate the canary analysis', 'gate deploys on the smoke tests', 'announce the freeze window'],
    questions: ['what went wrong rolling out the {system}', 'how do we ship {system} safely', 'why did the {system} deployment fail', 'rollout problems with {system}', 'lessons from the last {system} release'],
  },
  memory: {
    word: 'memory',
    symptoms: ['resident memory grew to {n} MB overnight', 'the pod was OOM killed {c} times', 'heap snapshots showed {n} retained listeners', 'swap usage climbed all week', 'the process leaked file handles until it hit {n}', 'old generation collections ran every {s} seconds', 'the container hit its {n} MB limit at noon'],
    causes: ['an unbounded in-process cache', 'event listeners that were never removed', 'large buffers held by a closure', 'a leak in the image decoding library', 'retried requests piling up in memory', 'a global map keyed by request id', 'timers that were never cleared', 'a debug flag that kept every response body'],
    fixes: ['capped the cache at {n} entries with LRU eviction', 'removed listeners on disconnect', 'streamed the payload instead of buffering it', 'upgraded the decoder to {v}', 'added an alert at {n} MB resident', 'cleared the map when requests finish', 'cleared the timers on shutdown', 'turned the debug flag off in production'],
    todos: ['take another heap snapshot after a day', 'set a container memory limit', 'add a soak test', 'graph heap size per release'],
    questions: ['why does the {system} use so much RAM', 'memory leak in {system}', 'why was {system} killed out of memory', 'what was eating memory in {system}', '{system} heap growth'],
  },
  config: {
    word: 'configuration',
    symptoms: ['the service read the wrong region setting', 'feature toggles disagreed between hosts', 'secrets failed to load on {c} hosts', 'a typo in the yaml disabled retries', 'timeouts reverted to defaults after a restart', 'staging credentials showed up in production', 'the new limit of {n} was ignored', 'half the fleet used the old endpoint'],
    causes: ['two config files with different precedence', 'a stale config map', 'an environment override left over from testing', 'the vault lease expiring after {c} hours', 'case-sensitive keys in the loader', 'a default baked into the image', 'a cached copy of the settings in redis', 'a templating bug in the ansible role'],
    fixes: ['made the environment variable the single source of truth', 'added schema validation of the config at startup', 'reloaded the config map on change', 'renewed leases {c} minutes early', 'documented the precedence order', 'removed the default from the image', 'expired the cached settings after {s} seconds', 'fixed the template and re-ran the role'],
    todos: ['audit the remaining overrides', 'add a config diff to the deploy output', 'move the secrets to the vault', 'delete the unused keys'],
    questions: ['which setting broke the {system}', 'how is the {system} configured', 'config mistakes in {system}', 'where does {system} read its settings from', 'wrong settings on {system}'],
  },
  tests: {
    word: 'testing',
    symptoms: ['the integration suite flaked {c} times this week', 'snapshot tests broke after the upgrade', 'coverage dropped to {p}%', 'the end-to-end test timed out in CI', 'a test passed locally but failed on the runner', 'the suite took {c} minutes', 'a retry hid a real failure for {c} days', 'the contract tests disagreed with production'],
    causes: ['shared state between test cases', 'a hard-coded date', 'ordering assumptions in the fixtures', 'a race with the mock server', 'time zone differences on the runner', 'a real network call in a unit test', 'a fixture generated from an old schema', 'random ports colliding on the runner'],
    fixes: ['isolated each test in its own schema', 'froze the clock in tests', 'sorted the fixtures explicitly', 'awaited the mock server readiness', 'set TZ=UTC in the CI job', 'stubbed the network client', 'regenerated the fixtures from the current schema', 'let the OS pick free ports'],
    todos: ['quarantine the remaining flaky tests', 'run the suite in parallel', 'raise coverage of the error paths', 'track flake rate per test'],
    questions: ['why are the {system} tests flaky', 'what broke the {system} test suite in CI', 'how did we stabilise the {system} tests', 'unreliable {system} tests, cause', '{system} CI failures'],
  },
};
const FACET_NAMES = Object.keys(FACETS);
export const KINDS = ['finding', 'decision', 'observation', 'handoff', 'checkpoint'];
const TEMPLATES = {
  finding: [
    '{System}: {symptom}. Root cause was {cause}; we {fix} and it has been stable for {c} days.',
    'Found it: {cause} made the {system} misbehave ({symptom}). We {fix}.',
    'Postmortem note, {system}: {symptom} traced to {cause}. Fix: we {fix}.',
  ],
  decision: [
    'Decision for the {system}: we {fix} because {cause} kept causing trouble ({symptom}). Revisit in {c} weeks.',
    'We agreed with {agent} that the {system} team {fix} rather than live with {cause}.',
    'ADR {ticket}: for {system} {word}, we {fix}; rejected alternative was waiting it out.',
  ],
  observation: [
    'Noticed on {host}: {symptom} in the {system}. Suspect {cause}, not confirmed yet. Ticket {ticket}.',
    'Heads up, {symptom} again on the {system}; could be {cause}.',
    '{System} on {host}: {symptom} between {hh}:00 and {hh2}:00 UTC.',
  ],
  handoff: [
    'Handoff on the {system} {word} work: we {fix} in {file}; still need to {todo}. Ask {agent} for context.',
    'Passing {ticket} to {agent}: {symptom}, likely {cause}. Next: {todo}.',
    'Taking over the {system} from {agent}; state: we {fix}, open question is {cause}.',
  ],
  checkpoint: [
    'Checkpoint {system} ({ticket}): we {fix}; next step is to {todo}. {c} tests passing, {d} failing.',
    'Progress on {system} {word}: {symptom} is gone after we {fix}. Remaining: {todo}.',
    'Status {ticket}: {file} changed, {c} files touched, waiting on review from {agent}.',
  ],
};
const EXTRAS = [
  ' Seen by {agent} on {host}.',
  ' Logged in {ticket}.',
  ' Affects {region} only.',
  ' Confirmed again on {weekday}.',
  ' Linked to {file}.',
  ' Started after the {month} upgrade to {v}.',
  ' Cost us about {c} hours.',
  ' {agent} reviewed it.',
  ' About {p}% of customers noticed.',
  ' Dashboard link in {ticket}.',
  ' Same thing happened in {month}.',
  ' Pager went off {c} times.',
];
/** A free clause most engrams carry: what the agent was doing when it noticed. */
const ACTIVITIES = ['reviewing', 'profiling', 'debugging', 'rewriting', 'migrating', 'load testing', 'cleaning up', 'documenting', 'upgrading', 'benchmarking', 'bisecting', 'pairing on', 'refactoring', 'auditing', 'monitoring'];
const OBJECTS = ['the retry logic', 'the batch importer', 'the health endpoint', 'the cache layer', 'the queue consumer', 'the login flow', 'the nightly report', 'the webhook handler', 'the admin api', 'the sharding code', 'the metrics exporter', 'the search ranking', 'the invoice job', 'the upload path', 'the session cleanup', 'the alert rules', 'the client sdk', 'the schema migration', 'the backfill script', 'the feature toggle code', 'the connection handling', 'the error pages', 'the audit trail', 'the export job', 'the build scripts'];
const REGIONS = ['eu-west-1', 'us-east-1', 'us-west-2', 'ap-south-1', 'eu-central-1'];
const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** 200 topics; each keeps a subset of its facet's phrases and its own hosts, files and ticket prefix. */
function makeTopics() {
  const r = rng(7);
  const pick = (xs, k) => [...xs].sort(() => r() - 0.5).slice(0, k);
  const out = [];
  SYSTEMS.forEach((system, si) =>
    FACET_NAMES.forEach((facet) => {
      const f = FACETS[facet];
      const slug = system.replace(/ /g, '-');
      out.push({
        system,
        slug,
        facet,
        symptoms: pick(f.symptoms, 7),
        causes: pick(f.causes, 7),
        fixes: pick(f.fixes, 7),
        hosts: [1, 2, 3].map((k) => `${slug.split('-')[0]}-${facet.slice(0, 3)}-${si}${k}.prod.internal`),
        files: [`src/${slug}/${facet}.ts`, `src/${slug}/index.ts`, `deploy/${slug}/values.yaml`],
        ticket: slug.split('-')[0].toUpperCase().slice(0, 4),
      });
    }),
  );
  return out;
}
export const TOPICS = makeTopics();

function fill(template, t, r) {
  const any = (xs) => xs[Math.floor(r() * xs.length)];
  const f = FACETS[t.facet];
  const hh = Math.floor(r() * 22);
  const vars = {
    system: t.system,
    System: t.system[0].toUpperCase() + t.system.slice(1),
    symptom: any(t.symptoms),
    cause: any(t.causes),
    fix: any(t.fixes),
    todo: any(f.todos),
    word: f.word,
    host: any(t.hosts),
    file: any(t.files),
    agent: any(AGENTS),
    ticket: `${t.ticket}-${100 + Math.floor(r() * 9900)}`,
    region: any(REGIONS),
    weekday: any(WEEKDAYS),
    month: any(MONTHS),
    hh: String(hh).padStart(2, '0'),
    hh2: String(hh + 1 + Math.floor(r() * 2)).padStart(2, '0'),
  };
  const num = {
    n: () => 50 + Math.floor(r() * 4000),
    s: () => 1 + Math.floor(r() * 60),
    c: () => 2 + Math.floor(r() * 40),
    p: () => 5 + Math.floor(r() * 90),
    d: () => Math.floor(r() * 9),
    v: () => `${1 + Math.floor(r() * 4)}.${Math.floor(r() * 20)}.${Math.floor(r() * 10)}`,
  };
  // Two passes: the named slots first, then the numbers inside the phrases they brought in.
  return template.replace(/\{(\w{2,})\}/g, (_, k) => vars[k] ?? `{${k}}`).replace(/\{(\w)\}/g, (_, k) => String(num[k]()));
}

/** n engrams: text, kind, scope, author, tags, created time (last 180 days), topic index. */
export function corpus(n, seed, at) {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const ti = Math.floor(r() * TOPICS.length);
    const t = TOPICS[ti];
    const kind = KINDS[Math.floor(r() * KINDS.length)];
    const templates = TEMPLATES[kind];
    let template = templates[Math.floor(r() * templates.length)];
    const extras = Math.floor(r() * 3);
    for (let i = 0; i < extras; i++) template += EXTRAS[Math.floor(r() * EXTRAS.length)];
    let text = fill(template, t, r);
    if (r() < 0.7) text += ` Noticed while ${ACTIVITIES[Math.floor(r() * ACTIVITIES.length)]} ${OBJECTS[Math.floor(r() * OBJECTS.length)]}.`;
    const author = AGENTS[Math.floor(r() * AGENTS.length)];
    const x = r();
    const tags = x < 0.4 ? [] : x < 0.8 ? [t.slug] : [t.slug, t.facet];
    return { ti, text, kind, scope: r() < 0.15 ? 'private' : 'project', author, tags, createdAt: at - Math.floor(r() * 180 * DAY) };
  });
}

/** Paraphrased questions about one topic each, sometimes naming a suspected cause. */
export function queries(n, seed) {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const ti = Math.floor(r() * TOPICS.length);
    const t = TOPICS[ti];
    const q = FACETS[t.facet].questions[Math.floor(r() * 5)].replace('{system}', t.system);
    const cause = t.causes[Math.floor(r() * t.causes.length)].replace(/\{\w\}/g, '').replace(/\s+/g, ' ').trim();
    return { ti, text: r() < 0.4 ? `${q} (${cause}?)` : `${q}?` };
  });
}
