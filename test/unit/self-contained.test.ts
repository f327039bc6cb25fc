import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The repository stands on its own: users and maintainers get only what is in it. No file points
 * at a sibling folder outside the repository or at design notes that are not shipped, README.md
 * links the architecture map, and every relative link in README.md and docs/*.md resolves.
 *
 * The needles are built from pieces so that this file does not trip its own check.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUTSIDE = '..' + '/shared';
const NOTES = ['DESIGN' + '.md', 'STYLE' + '.md'];
/** Applied migrations are checksummed: they keep their old section citations (see docs/ARCHITECTURE.md). */
const MIGRATION = /^src\/core\/store\/migrations\/[^/]+\/[^/]+\.sql$/;
const MIGRATION_CITATION = 'DESIGN' + '.md §';

function gitFiles(...args: string[]): string[] {
  return execFileSync('git', ['ls-files', '-z', ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\0')
    .filter((f) => f !== '');
}

/** Tracked files plus untracked ones that are not ignored, as they are on disk now. */
function repositoryFiles(): string[] {
  const all = new Set([...gitFiles(), ...gitFiles('--others', '--exclude-standard')]);
  return [...all]
    .filter((f) => !f.split('/').some((part) => part === 'node_modules' || part === '.git'))
    .filter((f) => existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile())
    .sort();
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** Every `needle` in `text` as `path:line`, except those `allowed` says may stay. */
function hits(path: string, text: string, needle: string, allowed: (at: number) => boolean = () => false): string[] {
  const found: string[] = [];
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) {
    if (!allowed(at)) found.push(`${path}:${lineOf(text, at)}`);
  }
  return found;
}

/** Markdown without fenced code blocks and inline code, where `[x](y)` is not a link. */
function prose(markdown: string): string {
  return markdown
    .replace(/^(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (block) => block.replace(/[^\n]/g, ' '))
    .replace(/(`+)[^`\n][\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, ' '));
}

/** The link targets of a markdown text: inline `[text](target "title")` and reference definitions. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const targets: string[] = [];
  for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
  for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) targets.push(m[1]!);
  return targets;
}

function isRelative(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#') && !target.startsWith('//');
}

describe('the repository is self-contained', () => {
  const files = repositoryFiles();

  it('finds the files git knows of', () => {
    expect(files).toContain('package.json');
    expect(files).toContain('test/unit/self-contained.test.ts');
  });

  it(`no file refers to ${OUTSIDE}`, () => {
    const found = files.flatMap((f) => hits(f, readFileSync(join(ROOT, f), 'utf8'), OUTSIDE));
    expect(found, `these refer to ${OUTSIDE}, which users do not have: copy what they need into the repository and point there`).toEqual([]);
  });

  it(`no file cites ${NOTES.join(' or ')} (applied migrations may keep "${MIGRATION_CITATION}")`, () => {
    const found = files.flatMap((f) => {
      const text = readFileSync(join(ROOT, f), 'utf8');
      const migration = MIGRATION.test(f);
      return NOTES.flatMap((needle) => hits(f, text, needle, (at) => migration && text.startsWith(MIGRATION_CITATION, at)));
    });
    expect(found, `these cite design notes the repository does not ship: point at docs/ARCHITECTURE.md (or say it plainly) instead`).toEqual([]);
  });

  it('README.md links docs/ARCHITECTURE.md', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const linked = linkTargets(readme).some((t) => t.replace(/^\.\//, '').replace(/#.*$/, '') === 'docs/ARCHITECTURE.md');
    const mentioned = readme.includes('docs/ARCHITECTURE.md');
    expect(
      linked,
      mentioned
        ? 'README.md names docs/ARCHITECTURE.md but does not link it: write it as [docs/ARCHITECTURE.md](docs/ARCHITECTURE.md)'
        : 'README.md does not link docs/ARCHITECTURE.md: add a line such as "[docs/ARCHITECTURE.md](docs/ARCHITECTURE.md) is the map of the code"',
    ).toBe(true);
  });

  it('every relative link in README.md and docs/*.md points to a file that exists', () => {
    const docs = files.filter((f) => f === 'README.md' || /^docs\/[^/]+\.md$/.test(f));
    expect(docs).toContain('docs/ARCHITECTURE.md');
    const broken = docs.flatMap((doc) =>
      linkTargets(readFileSync(join(ROOT, doc), 'utf8'))
        .filter(isRelative)
        .flatMap((target) => {
          const path = decodeURIComponent(target.replace(/[#?].*$/, ''));
          if (path === '') return [];
          const resolved = join(ROOT, dirname(doc), path);
          return existsSync(resolved) ? [] : [`${doc}: ${target} (no ${relative(ROOT, resolved)})`];
        }),
    );
    expect(broken, 'these links point to nothing in the repository').toEqual([]);
  });
});
