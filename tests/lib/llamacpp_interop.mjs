// llama.cpp's side of tests/llamacpp_interop.sh, through node-llama-cpp (its prebuilt CPU
// llama.cpp):   node llamacpp_interop.mjs MODEL.gguf PROMPT N THREADS STRINGS.json
// Prints one JSON object:
//   prompt_ids  the prompt as llama.cpp feeds it (its BOS rule applied)
//   ids         prompt_ids, then N greedy tokens (argmax of llama.cpp's probabilities; stops
//               early at an end-of-generation token)
//   top         for each generated position, llama.cpp's 3 most likely [token, probability]
//   tokens      llama.cpp's tokenization (no special tokens) of each string of STRINGS.json
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [path, prompt, n, threads, strings] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: path});
const ctx = await model.createContext({contextSize: 256, threads: Number(threads)});
const seq = ctx.getSequence();
const prompt_ids = Array.from(model.tokenize(prompt));
if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) prompt_ids.unshift(model.tokens.bos);
const ids = [...prompt_ids], top = [];
let input = prompt_ids.map((t, i) => (i === prompt_ids.length - 1 ? [t, {generateNext: {probabilities: true}}] : t));
for (let s = 0; s < Number(n); s++) {
    const out = await seq.controlledEvaluate(input);
    const best = [...out[input.length - 1].next.probabilities.entries()].slice(0, 3);
    top.push(best);
    ids.push(best[0][0]);
    if (model.isEogToken(best[0][0])) break;
    input = [[best[0][0], {generateNext: {probabilities: true}}]];
}
const tokens = JSON.parse(readFileSync(strings, "utf8")).map((s) => Array.from(model.tokenize(s)));
console.log(JSON.stringify({prompt_ids, ids, top, tokens}));
await ctx.dispose();
await model.dispose();
