// Runs every client-compatibility test file in one Node process (test_compat.sh starts the
// simulator first).  node run.js [FILTER]: only tests whose "family: name" contains FILTER.
'use strict';
const lib = require('./lib');
for (const f of ['auth', 'graph', 'arm', 'keyvault']) require(`./${f}`);
lib.run(process.argv[2]).then((failed) => { process.exitCode = failed ? 1 : 0; },
  (e) => { console.log(`not ok - compat harness: ${e && e.stack}`); process.exitCode = 1; });
