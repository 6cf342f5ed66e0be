import { spawn, type ChildProcessByStdio } from "node:child_process";
import { Socket } from "node:net";
import type { Writable } from "node:stream";

/**
 * The guardian: one small `sh` process per service that holds the read end of a pipe from it and
 * is told each worker process group as it starts (`+<pgid>`) and ends (`-<pgid>`). When the pipe
 * reaches its end, the service is gone, however it went (SIGKILL, the OOM killer, a crash): the
 * kernel closes its descriptors. The guardian then sends SIGTERM to the groups still listed,
 * SIGKILL to those left after the grace period, and exits. It sits in a session of its own, so a
 * Ctrl-C or hang-up aimed at the service's terminal does not reach it, and ignores those signals
 * besides.
 */
const SCRIPT = `
trap '' INT HUP QUIT PIPE
groups=
while read -r op pgid; do
  case "$op" in
    +) groups="$groups $pgid" ;;
    -) kept=; for g in $groups; do [ "$g" = "$pgid" ] || kept="$kept $g"; done; groups=$kept ;;
  esac
done
[ -z "$groups" ] && exit 0
for g in $groups; do kill -TERM -"$g" 2>/dev/null; done
ticks=0
while [ "$ticks" -lt "$1" ]; do
  alive=
  for g in $groups; do kill -0 -"$g" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && exit 0
  sleep 0.1
  ticks=$((ticks + 1))
done
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
`;

// Module-level on purpose: a process exits once, so what kills the worker groups left running
// must see every ManagedWorker's groups, including those of workers nobody stops.
let guardian: ChildProcessByStdio<Writable, null, null> | undefined;
const watched = new Set<number>();
let exitHookInstalled = false;
/** The guardian's grace period between SIGTERM and SIGKILL, in its 100 ms polls: 5 s. */
const GRACE_TICKS = 50;

function write(line: string): void {
  guardian?.stdin.write(`${line}\n`);
}

function ensureGuardian(): void {
  if (guardian !== undefined) return;
  const child = spawn("sh", ["-c", SCRIPT, "guardian", String(GRACE_TICKS)], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  guardian = child;
  // Neither the process nor its pipe may keep the service's event loop alive.
  child.unref();
  child.stdin.on("error", () => undefined);
  // A pipe is a net.Socket, whose unref() the Writable type does not show.
  if (child.stdin instanceof Socket) child.stdin.unref();
  child.on("error", () => undefined);
  child.on("exit", () => {
    // Killed by someone: the next watch() starts another one, told every group still alive.
    if (guardian === child) guardian = undefined;
  });
  for (const pgid of watched) write(`+ ${pgid}`);
}

/**
 * Makes sure process group `pgid` does not outlive this process: an exit hook SIGKILLs it when
 * this process exits (process.exit(), an uncaught error), and the guardian when it dies without
 * one (SIGKILL, the OOM killer). Until {@link unwatchGroup}.
 */
export function watchGroup(pgid: number): void {
  watched.add(pgid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // "exit" listeners must be synchronous; process.kill is.
    process.on("exit", () => {
      for (const group of watched) {
        try {
          process.kill(-group, "SIGKILL");
        } catch {
          // ESRCH: the whole group has already exited.
        }
      }
      watched.clear();
    });
  }
  if (guardian === undefined) ensureGuardian();
  else write(`+ ${pgid}`);
}

/** The group has ended (or was killed by this process): neither the hook nor the guardian touch it. */
export function unwatchGroup(pgid: number): void {
  if (!watched.delete(pgid)) return;
  write(`- ${pgid}`);
}
