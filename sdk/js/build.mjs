#!/usr/bin/env node
// Builds a JavaScript Weft plugin into a WebAssembly component:
//
//   node sdk/js/build.mjs PLUGIN_DIR OUT.wasm
//
// PLUGIN_DIR holds plugin.js, whose default export is a defineStep(...) or defineTarget(...); that
// decides the world (step-plugin or target-plugin). The plugin may import 'weft-plugin', relative
// modules and packages installed in PLUGIN_DIR/node_modules: esbuild bundles them into one module,
// which componentize-js turns into a component. The build tools are installed on first use with
// `npm ci` from this folder's package-lock.json. WEFT_WIT_DIR overrides the WIT folder (default:
// wit/ of this checkout).

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SDK = dirname(fileURLToPath(import.meta.url));
const SDK_ENTRY = join(SDK, 'src', 'index.js');
const TOOLS = ['@bytecodealliance/componentize-js', '@bytecodealliance/preview2-shim', 'esbuild'];

function die(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

/** Runs `npm ci` unless every build tool is installed at the version package-lock.json pins. */
function ensureTools() {
  const lock = JSON.parse(readFileSync(join(SDK, 'package-lock.json'), 'utf8'));
  const stale = TOOLS.filter((name) => {
    const installed = join(SDK, 'node_modules', name, 'package.json');
    const pinned = lock.packages[`node_modules/${name}`]?.version;
    return !existsSync(installed) || JSON.parse(readFileSync(installed, 'utf8')).version !== pinned;
  });
  if (stale.length === 0) return;
  console.error(`installing the build tools (${stale.join(', ')}) with npm ci in ${SDK}`);
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: SDK, stdio: ['ignore', 2, 2] });
  if (npm.error || npm.status !== 0) {
    die(`npm ci failed in ${SDK}${npm.error ? `: ${npm.error.message}` : ''}; install Node 20+ and npm, then run \`npm ci\` there yourself`);
  }
}

async function bundle(esbuild, entry, outfile) {
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    alias: { 'weft-plugin': SDK_ENTRY },
    external: ['weft:*'],
    logLevel: 'error',
  });
}

async function main([pluginDir, out]) {
  if (!pluginDir || !out) die('usage: node sdk/js/build.mjs PLUGIN_DIR OUT.wasm');
  const source = resolve(pluginDir, 'plugin.js');
  if (!existsSync(source)) die(`${source} not found: a JavaScript plugin's module is plugin.js in its folder`);
  const wit = resolve(process.env.WEFT_WIT_DIR ?? join(SDK, '..', '..', 'wit'));
  if (!existsSync(join(wit, 'weft.wit'))) die(`${wit}/weft.wit not found; set WEFT_WIT_DIR to the folder holding weft.wit`);

  ensureTools();
  const esbuild = await import('esbuild');
  const { describePlugin, STEP_WORLD, TARGET_WORLD } = await import(pathToFileURL(SDK_ENTRY));
  const work = await mkdtemp(join(tmpdir(), 'weft-js-build-'));
  try {
    // Load the plugin in Node first: a mistake shows now, not after the build.
    const probe = join(work, 'probe.mjs');
    await bundle(esbuild, source, probe).catch((e) => die(`${source}: ${e.message}`));
    const plugin = await import(pathToFileURL(probe))
      .then((m) => m.default)
      .catch((e) => die(`${source}: ${e.stack ?? e}`));
    if (![STEP_WORLD, TARGET_WORLD].includes(plugin?.world)) {
      die(`${source} must \`export default\` a defineStep({...}) or defineTarget({...})`);
    }
    const summary = describePlugin(plugin).summary;
    console.error(`${plugin.world}: ${summary}`);

    const name = plugin.world === STEP_WORLD ? 'step' : 'target';
    const entry = join(work, 'entry.js');
    await writeFile(
      entry,
      [
        '// Written by build.mjs: binds the host imports and exports the plugin as the WIT world.',
        "import { log, secret } from 'weft:plugin/host@0.2.0';",
        "import { bindHost, componentExports } from 'weft-plugin';",
        `import plugin from ${JSON.stringify(source)};`,
        'bindHost({ log, secret });',
        'const exported = componentExports(plugin);',
        'export const describe = exported.describe;',
        `export const ${name} = exported.${name};`,
        '',
      ].join('\n'),
    );
    const bundled = join(work, 'bundle.js');
    await bundle(esbuild, entry, bundled);

    // preview2-shim 0.26 preopens nothing by default, and componentize-js reads the WIT and
    // sources through it: without this it fails with "No such file or directory (os error 44)".
    const { _setPreopens } = await import('@bytecodealliance/preview2-shim/filesystem');
    _setPreopens({ '/': '/' });
    const { componentize } = await import('@bytecodealliance/componentize-js');
    console.error(`building ${resolve(pluginDir)} (${plugin.world}) -> ${out}`);
    const start = performance.now();
    const { component } = await componentize({
      sourcePath: bundled,
      witPath: wit,
      worldName: plugin.world,
      // Plugin functions are synchronous, so fetch() could never complete inside one.
      disableFeatures: ['http', 'fetch-event'],
    }).catch((e) => die(`componentize-js failed for ${source}: ${e.message ?? e}`));
    await mkdir(dirname(resolve(out)), { recursive: true });
    await writeFile(out, component);
    const seconds = ((performance.now() - start) / 1000).toFixed(1);
    console.log(`built ${out}: ${(await stat(out)).size} bytes in ${seconds} s`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
