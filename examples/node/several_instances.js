// several_instances.js - a Node.js client of several greeksd instances
// (docs/api.md, "Several instances"; tested by tests/grpc/test_node_example.py).
//
//   node several_instances.js TARGET [CALLS] [BOOK_ID]
//
// What: TARGET is a list of addresses (ipv4:127.0.0.1:50051,127.0.0.1:50052)
// or a name (dns:///greeksd:50051). The script prices one small chain CALLS
// times (default 4), one PriceChain each, and prints one JSON line per call:
// the market, the contracts, their prices and deltas. With BOOK_ID it then
// opens that book and buys 10 of the underlying, printing each CommandReply.
// How: one channel with a service config: round robin over every address,
// and a call that ends UNAVAILABLE (an instance died or is draining) retried
// on another, up to 4 attempts. A retry resends the same request, so a
// command's idempotency key is the same on every attempt; the keys here are
// derived from BOOK_ID, so a second run is answered as a replay
// (replayed: true), never recorded twice.
// Why: balancing and failover belong to the gRPC client, not to a loop of ours.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const definition = protoLoader.loadSync(['greeks/v1/pricing.proto', 'greeks/v1/book.proto'], {
  includeDirs: [path.join(__dirname, '..', '..', 'proto')],
  keepCase: true, longs: String, enums: String, defaults: true,
});
const greeks = grpc.loadPackageDefinition(definition).greeks.v1;

const serviceConfig = {
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [{
    name: [{ service: 'greeks.v1.PricingService' }, { service: 'greeks.v1.BookService' }],
    retryPolicy: { maxAttempts: 4, initialBackoff: '0.1s', maxBackoff: '1s',
                   backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
  }],
};
const [target = 'ipv4:127.0.0.1:50051,127.0.0.1:50052', calls = '4', bookId] = process.argv.slice(2);
const channel = new grpc.Channel(target, grpc.credentials.createInsecure(), {
  'grpc.service_config': JSON.stringify(serviceConfig), 'grpc.enable_retries': 1 });
const pricing = new greeks.PricingService(target, null, { channelOverride: channel });
const books = new greeks.BookService(target, null, { channelOverride: channel });

// One unary call as a promise, with a 10 s deadline (retries included).
function call(client, method, request) {
  return new Promise((resolve, reject) => client[method](request, { deadline: Date.now() + 10000 },
    (err, reply) => (err ? reject(err) : resolve(reply))));
}

async function main() {
  const contracts = { strike: [90, 100, 110, 90, 100, 110], expiry: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
                      vol: [0.22, 0.2, 0.19, 0.22, 0.2, 0.19],
                      type: ['CALL', 'CALL', 'CALL', 'PUT', 'PUT', 'PUT'] };
  for (let i = 0; i < Number(calls); i++) {
    const market = { spot: 95 + i % 10, rate: 0.03, yield: 0.01 };
    const reply = await call(pricing, 'PriceChain', { model: 'MODEL_BSM', market, contracts,
                                                      outputs: ['PRICE', 'DELTA'] });
    console.log(JSON.stringify({ market, contracts, price: reply.greeks.price, delta: reply.greeks.delta }));
  }
  if (bookId) {
    const opened = await call(books, 'OpenBook', { book_id: bookId, name: 'Node example',
                                                   currency: 'USD', idempotency_key: `open-${bookId}` });
    console.log(JSON.stringify(opened));
    const stock = { underlying: 'AAPL', kind: 'UNDERLYING', multiplier: 1 };
    const traded = await call(books, 'ExecuteTrade', { book_id: bookId, trade_id: 'T1',
      legs: [{ instrument: stock, quantity: 10, price: 100 }], idempotency_key: `buy-${bookId}-T1` });
    console.log(JSON.stringify(traded));
  }
  channel.close();
}

main().catch((err) => {
  console.error(`several_instances: ${err.message}`);
  process.exit(1);
});
