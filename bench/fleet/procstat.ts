import { readdirSync, readFileSync } from 'node:fs';

/**
 * A process's resident memory and CPU time, read from /proc (Linux): what the benchmark charges
 * to the server side of each phase. CPU time is utime + stime in clock ticks; USER_HZ is 100 on
 * every Linux this runs on (the kernel's ABI value, independent of CONFIG_HZ).
 */
const USER_HZ = 100;

export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb);
}

/** User + system CPU time of the process so far, in ms (10 ms resolution). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / USER_HZ;
}

/** Open file descriptors of the process (sockets included); -1 when /proc does not say. */
export function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/**
 * The kernel's count of connections dropped because a listening socket's accept queue was full
 * (TcpExt ListenOverflows, system-wide since boot). Under syncookies the client believes it is
 * connected and gets ECONNRESET when it sends its ClientHello: read before and after a connect
 * phase to see how many of the load generator's resets were the server not accepting in time.
 */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = (lines[i] as string).split(/\s+/);
      const values = (lines[i + 1] as string).split(/\s+/);
      if (names[0] !== 'TcpExt:') continue;
      const at = names.indexOf('ListenOverflows');
      return at === -1 ? NaN : Number(values[at]);
    }
  } catch {
    // not Linux
  }
  return NaN;
}
