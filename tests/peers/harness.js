// What every scenario script needs: required environment variables, and waiting with a deadline.
'use strict';

const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = (ms, what) => new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref();
});
// `promise`, unless `ms` pass first.
const within = (ms, what, promise) => Promise.race([promise, deadline(ms, what)]);
// The first truthy value `check()` returns, polled every 20 ms, within `ms`.
const until = (ms, what, check) => within(ms, what, (async () => {
    for (;;) {
        const v = check();
        if (v) return v;
        await sleep(20);
    }
})());

module.exports = { env, sleep, deadline, within, until };
