// Greedy continuation and tokenization of a GGUF file by llama.cpp (node-llama-cpp's prebuilt
// CPU build), for scripts/llamacpp_interop.sh.
//   node llamacpp_interop.mjs MODEL.gguf PROMPT N THREADS
// prints one JSON object: {prompt_tokens: [...], text: "..."} (text: the N generated tokens).
import {getLlama, LlamaCompletion, LlamaLogLevel} from "node-llama-cpp";
const [path, prompt, n, threads] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: path});
const ctx = await model.createContext({contextSize: 256, threads: Number(threads)});
const completion = new LlamaCompletion({contextSequence: ctx.getSequence()});
const text = await completion.generateCompletion(prompt, {maxTokens: Number(n), temperature: 0});
console.log(JSON.stringify({prompt_tokens: Array.from(model.tokenize(prompt)), text}));
