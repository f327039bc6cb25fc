import { initialise } from '../core/identity/projects.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withSession } from './session.js';

export function init(inv: Invocation): Promise<Output> {
  return withSession(
    inv,
    async ({ store, caller, config }) => {
      const result = await initialise(store, caller, config.values.project);
      const slug = result.project.slug;
      const projectFlag = slug === 'default' ? '' : ` --project ${slug}`;
      const human = [
        `sos is ready: ${result.location}`,
        result.appliedMigrations.length
          ? `  migrations applied: ${result.appliedMigrations.join(', ')}`
          : '  database already up to date',
        result.projectCreated ? `  project "${slug}" created` : `  project "${slug}" already exists`,
        '',
        'Next:',
        ...table(
          ['command', 'what it does'],
          [
            [`sos agents add kasra --kind claude --cap code${projectFlag}`, 'register an agent'],
            [`sos tokens create --agent kasra${projectFlag}`, 'give it a token (shown once)'],
            ['sos doctor', 'check the installation'],
          ],
        )
          .split('\n')
          .slice(1)
          .map((line) => `  ${line}`),
      ].join('\n');
      return {
        data: {
          database: result.location,
          dialect: store.capabilities.dialect,
          appliedMigrations: result.appliedMigrations,
          project: slug,
          projectCreated: result.projectCreated,
        },
        human,
        quiet: result.location,
      };
    },
    { create: true, requireReady: false, localOnly: true },
  );
}

export function migrate(inv: Invocation): Promise<Output> {
  return withSession(
    inv,
    async ({ store }) => {
      if (inv.options.status) {
        const status = await store.migrationStatus();
        const rows = [
          ...status.applied.map((m) => [
            m.version,
            m.name,
            status.drifted.includes(m.version) ? 'applied, file changed since' : 'applied',
            iso(m.appliedAt),
          ]),
          ...status.pending.map((m) => [m.version, m.name, 'pending', null]),
        ];
        return {
          data: {
            database: store.location,
            applied: status.applied.map((m) => ({ ...m, appliedAt: iso(m.appliedAt) })),
            pending: status.pending,
            drifted: status.drifted,
          },
          human: `${fields([['database', store.location]])}\n${table(['version', 'name', 'state', 'applied at'], rows)}`,
        };
      }
      const { applied } = await store.migrate();
      return {
        data: { database: store.location, applied },
        human: applied.length
          ? `applied migrations ${applied.join(', ')} to ${store.location}`
          : `${store.location} is up to date`,
        quiet: applied.join('\n'),
      };
    },
    { requireReady: false, localOnly: true },
  );
}
