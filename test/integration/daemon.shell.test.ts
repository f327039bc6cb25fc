import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { daemonWorld, FAST, until } from '../helpers/daemon.js';
import { tmuxAvailable } from '../helpers/lifecycle.js';
import { HOSTILE, UNSAFE_OUTPUT } from '../fixtures/hostile.js';

/**
 * A message is never a shell command: an agent of kind `shell` lives in a real bash in real tmux,
 * a hostile sender writes a command line, and the daemon must not type it (wake off by default),
 * or type only the fixed `notify` line. The message waits in the inbox either way.
 */

const bashAvailable = existsSync('/bin/bash');

describe.skipIf(!tmuxAvailable || !bashAvailable)('wake delivery into a shell', () => {
  it('types nothing a sender wrote into bash: off by default, notify types a fixed comment line, text needs --i-understand-shell', async (ctx) => {
    const w = await daemonWorld(ctx);
    const pwned = join(w.dir, 'pwned');
    const pwned2 = join(w.dir, 'pwned2');
    execFileSync('tmux', ['-S', w.socket, 'new-session', '-d', '-s', 'v2', '-x', '120', '-y', '30', 'env', 'PS1=$ ', 'bash', '--norc', '--noprofile']);
    await until('the bash prompt', () => w.screen('v2').includes('$'));
    const add = await w.run(['agents', 'add', 'v2', '--kind', 'shell', '--session', 'tmux:v2', '--tmux-socket', w.socket]);
    expect(add.code, add.stderr).toBe(0);
    const shown = await w.run(['agents', 'show', 'v2', '--json']);
    expect(shown.json<{ wake: string; wakeDefault: boolean }>()).toMatchObject({ wake: 'off', wakeDefault: true });

    const d = await w.daemon(FAST);
    const sent = await w.run(['send', 'v2', `hello; touch ${pwned}; echo INJECTED`, '--as', 'boss', '-q']);
    expect(sent.code, sent.stderr).toBe(0);
    const id = sent.stdout.trim();
    const skipped = await d.waitFor((e) => e.event === 'wake_skipped' && (e.messages as string[]).includes(id));
    expect(String(skipped.reason)).toMatch(/wake off by default for kind shell/);
    await new Promise((r) => setTimeout(r, 500)); // a few more passes: still nothing typed
    expect(existsSync(pwned)).toBe(false);
    expect(w.screen('v2')).not.toContain('INJECTED');
    expect(w.screen('v2')).not.toContain('hello');
    expect(d.events.filter((e) => e.event === 'wake_skipped' && (e.messages as string[]).includes(id))).toHaveLength(1);

    // --wake text is refused for a shell without the operator's word; nothing changes.
    const refused = await w.run(['agents', 'set', 'v2', '--wake', 'text']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/runs it as a command/);
    expect(refused.stderr).toMatch(/--i-understand-shell/);
    expect((await w.run(['agents', 'show', 'v2', '--json'])).json<{ wake: string }>().wake).toBe('off');

    // notify: a fixed line, nothing the sender wrote.
    expect((await w.run(['agents', 'set', 'v2', '--wake', 'notify'])).code).toBe(0);
    const second = await w.run(['send', 'v2', `$(touch ${pwned2}) \x1b]0;pwned\x07 \`touch ${pwned2}\``, '--as', 'boss', '-q']);
    expect(second.code, second.stderr).toBe(0);
    const delivered = await d.waitFor((e) => e.event === 'wake_delivered' && (e.messages as string[]).includes(second.stdout.trim()));
    expect(delivered.agent).toBe('v2');
    await until('the notify line on screen', () => w.screen('v2').includes('# [sos] 1 new message: run sos inbox'));
    expect(existsSync(pwned)).toBe(false);
    expect(existsSync(pwned2)).toBe(false);
    expect(w.screen('v2')).not.toContain('touch');

    // Both messages are in the inbox, whole.
    const inbox = await w.run(['inbox', '--as', 'v2', '--json']);
    const texts = inbox.json<{ unread: { text: string }[] }>().unread.map((m) => m.text);
    expect(texts).toEqual([`hello; touch ${pwned}; echo INJECTED`, `$(touch ${pwned2}) \x1b]0;pwned\x07 \`touch ${pwned2}\``]);

    // The operator may still choose text, explicitly.
    const allowed = await w.run(['agents', 'set', 'v2', '--wake', 'text', '--i-understand-shell']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect((await w.run(['agents', 'show', 'v2', '--json'])).json<{ wake: string; wakeDefault: boolean }>()).toMatchObject({ wake: 'text', wakeDefault: false });
  });

  it('screen lines an agent prints reach probe, status and history neutralised, and --json exact', async (ctx) => {
    const w = await daemonWorld(ctx);
    // A prompt carrying a right-to-left override and a title-setting sequence.
    execFileSync('tmux', ['-S', w.socket, 'new-session', '-d', '-s', 'h1', '-x', '120', '-y', '30', 'env', 'PS1=evil\u202ex \x1b]0;pwned\x07$ ', 'bash', '--norc', '--noprofile']);
    await until('the prompt', () => w.screen('h1').includes('$'));
    expect((await w.run(['agents', 'add', 'h1', '--kind', 'shell', '--session', 'tmux:h1', '--tmux-socket', w.socket])).code).toBe(0);
    const probe = await w.run(['agents', 'probe', 'h1']);
    expect(probe.code, probe.stderr).toBe(0);
    expect(probe.stdout).toContain('evil\\u202ex');
    for (const args of [['agents', 'probe', 'h1'], ['agents', 'status'], ['agents', 'history', 'h1']]) {
      const r = await w.run(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout, args.join(' ')).not.toMatch(UNSAFE_OUTPUT);
    }
    const json = (await w.run(['agents', 'probe', 'h1', '--json'])).json<{ evidence: { lines?: string[] }[] }>();
    expect(json.evidence.flatMap((e) => e.lines ?? [])).toContain('evil\u202ex $');
  });

  it('with --wake text, the line typed for a hostile message carries no control, C1 or bidi character', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    const d = await w.daemon(FAST);
    await w.ready('ada');
    const names = Object.keys(HOSTILE).filter((n) => n !== 'long line');
    for (const name of names) {
      const r = await w.run(['send', 'ada', '--stdin', '--as', 'boss', '-q'], { input: `${name}: ${HOSTILE[name]!}` });
      expect(r.code, r.stderr).toBe(0);
      await d.waitFor((e) => e.event === 'wake_delivered' && (e.messages as string[]).includes(r.stdout.trim()), 12_000);
    }
    const lines = w.sosLines('ada').filter((r) => !r.line!.startsWith('[sos] context after restart')).map((r) => r.line!);
    // One line per message, or a digest of several when they came while it was busy: all announced.
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).not.toMatch(UNSAFE_OUTPUT);
    expect(lines.join('\n')).toContain('\\u202e');
  });
});
