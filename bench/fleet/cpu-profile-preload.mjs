// Preloaded into `meshcfg serve` by `bench:fleet --cpu-prof DIR` (NODE_OPTIONS=--import; node
// refuses --cpu-prof itself in NODE_OPTIONS): profiles the whole process with the inspector and
// writes DIR/meshcfg-<pid>.cpuprofile when it exits. The in-process session answers synchronously,
// so stopping in an 'exit' handler works.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.MESHCFG_BENCH_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `meshcfg-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
