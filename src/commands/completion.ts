import { type CommandSpec, lazy } from './define.js';

export const completionCommand: CommandSpec = {
  name: 'completion',
  summary: 'print a shell completion script (bash, zsh or fish)',
  group: 'Setup',
  args: [{ name: 'shell', summary: 'bash, zsh or fish', choices: ['bash', 'zsh', 'fish'] }],
  handler: lazy(() => import('./completion.run.js'), 'completion'),
  examples: [
    'sos completion bash > /etc/bash_completion.d/sos',
    'sos completion zsh > ~/.zfunc/_sos   # with fpath+=(~/.zfunc) before compinit',
    'sos completion fish > ~/.config/fish/completions/sos.fish',
  ],
};
