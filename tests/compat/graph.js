// Microsoft Graph through the Graph JS client (@microsoft/microsoft-graph-client).
'use strict';
const { PageIterator, BatchRequestContent, BatchResponseContent } =
  require('@microsoft/microsoft-graph-client');
const { test, assert, graph } = require('./lib');

test('graph', 'PageIterator visits every user once across $top pages', async () => {
  const client = graph();
  const first = await client.api('/users').top(7).select('id,displayName').get();
  assert.ok(first['@odata.nextLink'], 'a nextLink on the first page');
  const seen = new Set();
  let n = 0;
  await new PageIterator(client, first, (u) => { n++; seen.add(u.id); return true; }).iterate();
  assert.ok(n > 7, `more than one page (${n})`);
  assert.equal(seen.size, n, 'no user twice');
});

test('graph', '$search and $count with ConsistencyLevel: eventual', async () => {
  const r = await graph().api('/users').header('ConsistencyLevel', 'eventual')
    .search('"displayName:admin"').count(true).select('id,displayName').get();
  assert.equal(typeof r['@odata.count'], 'number');
  assert.equal(r['@odata.count'], r.value.length);
  assert.ok(r.value.every((u) => /admin/i.test(u.displayName)));
});

test('graph', '$batch: three requests, each answered with its own status', async () => {
  const client = graph();
  const batch = new BatchRequestContent([
    { id: '1', request: new Request('https://graph.microsoft.com/v1.0/organization', { method: 'GET' }) },
    { id: '2', request: new Request('https://graph.microsoft.com/v1.0/users?$top=1', { method: 'GET' }) },
    { id: '3', request: new Request('https://graph.microsoft.com/v1.0/users/no-such-user', { method: 'GET' }) },
  ]);
  const res = new BatchResponseContent(await client.api('/$batch').post(await batch.getContent()));
  const r1 = res.getResponseById('1');
  assert.equal(r1.status, 200);
  assert.equal(res.getResponseById('2').status, 200);
  assert.equal(res.getResponseById('3').status, 404);
});
