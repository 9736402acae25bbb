// Runs a Weft plugin component in Node, standing in for the host: jco transpiles the component
// to JavaScript, preview2-shim provides WASI, and `weft:plugin/host` is a fake that records log
// lines and hands out the secrets it was given. For checking built components before the Rust
// host loads weft:plugin@0.2.0; not for production use.

import { transpileBytes } from '@bytecodealliance/jco-transpile';
import * as wasi from '@bytecodealliance/preview2-shim';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const kebab = (name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Loads the component at `path`. Returns its exports (`step`, `target`, `describe` as jco
 * shapes them), the interfaces it imports and exports, the log lines it wrote so far
 * (`[level, message]`), and `close()` to remove the transpiled files.
 */
export async function load(path, { secrets = {} } = {}) {
  const { files, imports, exports } = await transpileBytes(await readFile(path), {
    name: 'plugin',
    instantiation: { tag: 'async' },
  });
  const dir = await mkdtemp(join(tmpdir(), 'weft-component-'));
  for (const [name, bytes] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), bytes);
  }
  const logs = [];
  const provided = {
    'weft:plugin/host': {
      log: (level, message) => logs.push([level, message]),
      secret: (name) => secrets[name],
    },
    'weft:plugin/types': {},
  };
  for (const [pkg, interfaces] of Object.entries(wasi)) {
    for (const [name, value] of Object.entries(interfaces)) provided[`wasi:${pkg}/${kebab(name)}`] = value;
  }
  const module = await import(pathToFileURL(join(dir, 'plugin.js')));
  const instance = await module.instantiate(
    (file) => readFile(join(dir, file)).then((bytes) => WebAssembly.compile(bytes)),
    provided,
  );
  return {
    instance,
    imports,
    exports: exports.map(([name]) => name),
    logs,
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
