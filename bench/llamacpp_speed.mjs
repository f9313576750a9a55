// llama.cpp's side of bench/side_by_side.py, through node-llama-cpp's prebuilt CPU llama.cpp:
//   node llamacpp_speed.mjs MODEL.gguf IDS.json THREADS GEN REPEAT
// Evaluates the prompt IDS.json (token ids) from an empty cache in a fresh context, then GEN
// greedy tokens one at a time; REPEAT times after one warm-up run. The figures are llama.cpp's
// own (llama_perf_context: prompt eval time, eval time), as llama-bench reports them, so the
// JavaScript between tokens (about 0.6 ms a token here) is not counted against llama.cpp.
// Prints {"prompt_tps": best, "gen_tps": best, "llama_cpp": "node-llama-cpp VERSION", "system_info": ...} as JSON.
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [path, idsPath, threads, gen, repeat] = process.argv.slice(2);
const ids = JSON.parse(readFileSync(idsPath, "utf8"));
let perf = {};
const llama = await getLlama({
    gpu: false, build: "never", logLevel: LlamaLogLevel.info,
    logger: (level, msg) => {
        const m = /(prompt eval|\beval) time =\s*([0-9.]+) ms \/\s*([0-9]+)/.exec(msg);
        if (m) perf[m[1] === "prompt eval" ? "pp" : "tg"] = {ms: Number(m[2]), n: Number(m[3])};
        else if (level === "error" || level === "fatal") process.stderr.write(msg);
    },
});
const model = await llama.loadModel({modelPath: path});
let pp = 0, tg = 0;
for (let r = 0; r <= Number(repeat); r++) { // run 0 warms up (the weights mapped in)
    const ctx = await model.createContext({contextSize: ids.length + Number(gen) + 8, batchSize: Math.max(512, ids.length),
                                           threads: Number(threads), performanceTracking: true});
    const seq = ctx.getSequence();
    let n = 0;
    for await (const tok of seq.evaluate(ids, {temperature: 0})) {
        void tok;
        if (n++ === Number(gen)) break;
    }
    perf = {};
    await ctx.printTimings();
    await ctx.dispose();
    if (!perf.pp || !perf.tg || perf.pp.n !== ids.length || perf.tg.n !== Number(gen))
        throw new Error("llama.cpp's timings not found or not for this run: " + JSON.stringify(perf));
    if (r === 0) continue;
    pp = Math.max(pp, perf.pp.n / (perf.pp.ms / 1e3));
    tg = Math.max(tg, perf.tg.n / (perf.tg.ms / 1e3));
}
const pkg = JSON.parse(readFileSync(new URL("node_modules/node-llama-cpp/package.json", import.meta.url), "utf8"));
console.log(JSON.stringify({prompt_tps: pp, gen_tps: tg, llama_cpp: `node-llama-cpp ${pkg.version}`, system_info: llama.systemInfo}));
await model.dispose();
