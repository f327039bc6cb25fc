import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { OperationFailed, UsageError } from '../errors.js';

/**
 * The git a worker needs, always as an argument vector (`execFile`, never a shell), with
 * `-C <repo>` so no command depends on the process's working directory.
 */

const BRANCH_PREFIX = 'sos/';
const TASK_BRANCH = /^refs\/heads\/sos\/(tsk_[0-9a-z]{26})$/;

export const branchOf = (taskId: string): string => `${BRANCH_PREFIX}${taskId}`;

/** The task id a worktree's branch names (`refs/heads/sos/<task id>`), or null for any other branch. */
export function taskOfBranch(ref: string | null): string | null {
  return ref === null ? null : (TASK_BRANCH.exec(ref)?.[1] ?? null);
}

export function git(repo: string, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-C', repo, ...args],
      { encoding: 'utf8', timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err) reject(new OperationFailed(`git ${args[0]} failed in ${repo}: ${(stderr || err.message).trim().slice(0, 2_000)}`, { cause: err }));
        else resolve(stdout);
      },
    );
  });
}

/** The repository's top level; refuses a path that is not inside a git work tree. */
export async function repoRoot(path: string): Promise<string> {
  try {
    return (await git(path, ['rev-parse', '--show-toplevel'])).trim();
  } catch (err) {
    throw new UsageError(`--repo ${path} is not a git repository`, { hint: 'point --repo at a clone (git init, git clone)', cause: err });
  }
}

/** The commit a ref names (`HEAD` when none): worktrees start from a commit, so a moving branch cannot shift under a run. */
export async function resolveCommit(repo: string, ref: string | null): Promise<string> {
  const name = ref ?? 'HEAD';
  try {
    return (await git(repo, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${name}^{commit}`])).trim();
  } catch (err) {
    throw new UsageError(`the base ref ${JSON.stringify(name)} names no commit in ${repo}`, { cause: err });
  }
}

export async function branchExists(repo: string, branch: string): Promise<boolean> {
  try {
    await git(repo, ['show-ref', '--verify', '--quiet', `refs/heads/${branch}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A worktree on the task's branch: a new branch from `base`, or, when an earlier attempt left
 * the branch behind, that branch as it is (a retry continues from the commits already made).
 */
export async function addWorktree(repo: string, dir: string, branch: string, base: string): Promise<void> {
  if (await branchExists(repo, branch)) await git(repo, ['worktree', 'add', '--quiet', dir, branch]);
  else await git(repo, ['worktree', 'add', '--quiet', '-b', branch, dir, base]);
}

/** Removes a worktree and its administrative files; the branch stays. A directory git no longer knows is deleted and pruned. */
export async function removeWorktree(repo: string, dir: string): Promise<void> {
  try {
    await git(repo, ['worktree', 'remove', '--force', '--force', dir]);
  } catch {
    await rm(dir, { recursive: true, force: true });
    await git(repo, ['worktree', 'prune']);
  }
}

/** Commits on the branch since the base, oldest first. */
export async function commitsSince(repo: string, base: string, branch: string): Promise<string[]> {
  const out = await git(repo, ['rev-list', '--reverse', `${base}..refs/heads/${branch}`]);
  return out.split('\n').filter(Boolean);
}

/** `git diff --stat` between the base and the branch, the summary line last. */
export async function diffStat(repo: string, base: string, branch: string): Promise<string> {
  return (await git(repo, ['diff', '--stat', base, `refs/heads/${branch}`])).trimEnd();
}

export interface WorktreeEntry {
  path: string;
  /** `refs/heads/…`, or null when detached. */
  branch: string | null;
}

/** `git worktree list --porcelain`, parsed. */
export async function listWorktrees(repo: string): Promise<WorktreeEntry[]> {
  const out = await git(repo, ['worktree', 'list', '--porcelain']);
  const entries: WorktreeEntry[] = [];
  let current: WorktreeEntry | null = null;
  for (const line of out.split('\n')) {
    if (line.startsWith('worktree ')) {
      current = { path: line.slice('worktree '.length), branch: null };
      entries.push(current);
    } else if (line.startsWith('branch ') && current) current.branch = line.slice('branch '.length);
  }
  return entries;
}
