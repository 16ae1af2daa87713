/**
 * `node --import <this file>`: records every module the process loads into the file named by
 * AKV_TEST_MODULE_LOG, one URL or path a line: ES modules as they load (a module hook, which sees
 * `import` and `import()` of packages too), and at exit every CommonJS file in require's cache
 * (what CommonJS packages load among themselves). Tests pass it in NODE_OPTIONS to see what an
 * akv process (an autostarted agent included) loaded.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.AKV_TEST_MODULE_LOG;
if (file) {
  register('./module-log-hooks.js', import.meta.url, { data: { file } });
  const require = createRequire(import.meta.url);
  process.on('exit', () => {
    const cjs = Object.keys(require.cache);
    if (cjs.length > 0) appendFileSync(file, `${cjs.join('\n')}\n`);
  });
}
