import { connect } from 'node:net';

function command(...parts: string[]): string {
  return `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
}

/**
 * PING a Redis server over a bare socket (with AUTH from the URL): `sos doctor` must answer
 * without loading a Redis client. Resolves with the first reply line of PING, rejects on error.
 */
export function redisPing(url: string, timeoutMs = 2_000): Promise<string> {
  const parsed = new URL(url);
  if (parsed.protocol === 'rediss:')
    return Promise.reject(new Error('TLS (rediss://) is not checked by doctor yet'));
  const host = parsed.hostname || '127.0.0.1';
  const port = Number(parsed.port || 6379);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    let buffer = '';
    const expected = parsed.password ? 2 : 1;
    socket.on('connect', () => {
      if (parsed.password) {
        const user = decodeURIComponent(parsed.username);
        const pass = decodeURIComponent(parsed.password);
        socket.write(user ? command('AUTH', user, pass) : command('AUTH', pass));
      }
      socket.write(command('PING'));
    });
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const lines = buffer.split('\r\n').filter((l) => l !== '');
      const failure = lines.find((l) => l.startsWith('-'));
      if (failure || lines.length >= expected) {
        clearTimeout(timer);
        socket.end();
        if (failure) reject(new Error(failure.slice(1)));
        else resolve(lines[expected - 1]!.replace(/^\+/, ''));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
