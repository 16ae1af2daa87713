/**
 * What systemd does for akv-agent.socket across restarts, without a running systemd: a holder
 * process binds and listens on the socket once and keeps it for its whole life; each agent it
 * starts gets it as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to the agent's pid. Between agents
 * the kernel queues new connections (up to the backlog), so clients see a slow answer, not a
 * refused connection. `systemd-socket-activate` cannot do this (it execs the agent, so the socket
 * dies with it). The holder is a few lines of Perl (perl-base: on every Debian): it starts an
 * agent whenever it reads a line on stdin and reports `started PID` / `exited PID STATUS`.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const HOLDER = String.raw`
use strict; use warnings; use Socket; use POSIX ();
my ($path, @cmd) = @ARGV;
$| = 1;
unlink $path;
$^F = 3; # fds up to 3 stay open across exec: the socket may well be fd 3 itself
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($path)) or die "bind $path: $!";
chmod 0600, $path;
listen($s, 4096) or die "listen: $!";
print "listening\n";
while (my $line = <STDIN>) {
  my $pid = fork() // die "fork: $!";
  if ($pid == 0) {
    POSIX::dup2(fileno($s), 3) // die "dup2: $!" if fileno($s) != 3;
    # Not our stdin: a Node.js child killed with SIGKILL leaves a shared pipe non-blocking.
    open(STDIN, '<', '/dev/null') or die "stdin: $!";
    $ENV{LISTEN_FDS} = 1; $ENV{LISTEN_PID} = $$;
    exec @cmd or die "exec $cmd[0]: $!";
  }
  print "started $pid\n";
  waitpid($pid, 0);
  print "exited $pid $?\n";
}
`;

export interface SocketHolder {
  /** The socket path (it stays bound while the holder lives). */
  path: string;
  /** Starts an agent on the held socket; resolves with its pid once it prints its ready line. */
  startAgent(): Promise<number>;
  /** Resolves when agent PID has exited, with its wait status ($? of Perl: signal in the low bits). */
  exited(pid: number): Promise<number>;
  /** Everything the agents wrote to stdout and stderr so far. */
  output(): string;
  /** Kills the current agent (if any) and the holder. */
  stop(): Promise<void>;
}

const holders = new Set<ChildProcess>();
process.on('exit', () => {
  for (const h of holders) h.kill('SIGKILL');
});

export async function holdSocket(
  path: string,
  command: string[],
  env: NodeJS.ProcessEnv,
): Promise<SocketHolder> {
  const child = spawn('perl', ['-e', HOLDER, path, ...command], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  holders.add(child);
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (c: Buffer): void => {
    out += c.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const until = async (test: () => boolean, what: string, ms = 30_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!test()) {
      if (child.exitCode !== null) throw new Error(`the socket holder exited: ${out}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; output:\n${out}`);
      await Promise.race([
        new Promise<void>((r) => waiters.push(r)),
        new Promise((r) => setTimeout(r, 100)),
      ]);
    }
  };
  await until(() => /^listening$/m.test(out), 'the holder to listen');
  let current: number | undefined;
  const holder: SocketHolder = {
    path,
    startAgent: async () => {
      const before = out.length;
      child.stdin!.write('start\n');
      let pid = 0;
      await until(() => {
        const m = /^started (\d+)$/m.exec(out.slice(before));
        if (m) pid = Number(m[1]);
        return (
          pid > 0 && /akv agent listening on .*\(socket passed by systemd\)/.test(out.slice(before))
        );
      }, 'the agent to start');
      current = pid;
      return pid;
    },
    exited: async (pid) => {
      let status = -1;
      await until(() => {
        const m = new RegExp(`^exited ${pid} (\\d+)$`, 'm').exec(out);
        if (m) status = Number(m[1]);
        return status >= 0;
      }, `agent ${pid} to exit`);
      if (current === pid) current = undefined;
      return status;
    },
    output: () => out,
    stop: async () => {
      if (current !== undefined) {
        try {
          process.kill(current, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      child.stdin!.end();
      child.kill('SIGTERM');
      await gone;
      holders.delete(child);
    },
  };
  return holder;
}
