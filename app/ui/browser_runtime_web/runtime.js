// Runs an ONNX subnet in the viewer's browser with onnxruntime-web and reports the outputs and the measured latencies
// to Python as JSON text (validated there: app/ui/browser_report.py). Backend: WASM (1 thread) always; WebGPU when
// asked for and the page is a secure context whose browser has a WebGPU adapter (else WASM, and the report says so).
// The runtime, the model and the input are fetched from the app's own origin (no CDN): see app/ui/browser_runtime.py.
const SHARED = (globalThis.__ofaExplorerBrowserRuntime ??= { ort: {}, sessions: new Map(), gpu: null });
const MAX_SESSIONS = 2; // models kept ready per page (the largest subnet's fp32 file is ~37 MB)
const BUNDLES = { wasm: "ort.wasm.min.mjs", webgpu: "ort.webgpu.min.mjs" };

async function runtime(base, backend = "wasm") {
  SHARED.ort ??= {};
  if (!SHARED.ort[backend]) {
    SHARED.ort[backend] = import(new URL(base + BUNDLES[backend], location.href).href).then((ort) => {
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.proxy = false;
      ort.env.wasm.wasmPaths = new URL(base, location.href).href;
      return ort;
    });
  }
  return SHARED.ort[backend];
}

// Whether this page can use WebGPU: a secure context (https, or http on localhost) with an adapter.
async function webgpuAvailable() {
  if (SHARED.gpu === null) {
    SHARED.gpu = (async () => {
      if (!globalThis.isSecureContext || !navigator.gpu) return false;
      try { return !!(await navigator.gpu.requestAdapter()); } catch { return false; }
    })();
  }
  return SHARED.gpu;
}

async function fetchBytes(url) {
  const response = await fetch(new URL(url, location.href).href);
  if (!response.ok) throw new Error(`the app answered ${response.status} for a file it should serve`);
  return response.arrayBuffer();
}

async function session(ort, modelUrl, backend, say) {
  // cached per model URL and backend: the URL is derived from the model's content, so a new subnet is a new URL
  const key = backend + " " + modelUrl;
  if (!SHARED.sessions.has(key)) {
    const created = (async () => {
      say("Downloading the subnet from the app…");
      const bytes = await fetchBytes(modelUrl);
      say(`Preparing the subnet (${(bytes.byteLength / 1e6).toFixed(1)} MB)…`);
      return ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: [backend], graphOptimizationLevel: "all" });
    })();
    SHARED.sessions.set(key, created);
    created.catch(() => SHARED.sessions.delete(key));
    while (SHARED.sessions.size > MAX_SESSIONS) {
      const [oldest, old] = SHARED.sessions.entries().next().value;
      SHARED.sessions.delete(oldest);
      old.then((s) => s.release()).catch(() => {});
    }
  }
  const s = await SHARED.sessions.get(key);
  SHARED.sessions.delete(key); // most recently used last
  SHARED.sessions.set(key, Promise.resolve(s));
  return s;
}

async function timeRuns(s, feeds, task, say, what) {
  let result = null;
  for (let i = 0; i < task.warmup; i++) result = await s.run(feeds);
  const latencies = [];
  for (let i = 0; i < task.runs; i++) {
    if (say) say(`${what}: timing run ${i + 1} of ${task.runs}…`);
    const t0 = performance.now();
    result = await s.run(feeds);
    latencies.push(performance.now() - t0);
  }
  return { result, latencies };
}

// Profile this device: time each weightless probe subnet (tiny files; onnxruntime folds their constant weights when
// the session is created) on an input of its size, one after the other, releasing each session when done.
// progress(done, total, text) is called before each probe and at the end.
export async function profile(task, progress) {
  const ort = await runtime(task.runtime_base, "wasm");
  const latencies = [];
  const n = task.probes.length;
  for (let p = 0; p < n; p++) {
    const probe = task.probes[p];
    progress(p, n, `Timing subnet ${p + 1} of ${n} on this device…`);
    const bytes = await fetchBytes(probe.url);
    const s = await ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    try {
      const size = probe.input_shape.reduce((a, b) => a * b, 1);
      const feeds = { [probe.input_name || "image"]: new ort.Tensor("float32", new Float32Array(size).fill(0.5), probe.input_shape) };
      latencies.push((await timeRuns(s, feeds, task, null, "")).latencies);
    } finally {
      await s.release();
    }
  }
  progress(n, n, "Profiled.");
  return { request_id: task.request_id, kind: "profile", backend: "wasm", latencies_ms: latencies };
}

async function measure(task, say) {
  const backend = task.backend === "webgpu" && (await webgpuAvailable()) ? "webgpu" : "wasm";
  if (task.backend === "webgpu" && backend !== "webgpu") say("WebGPU is not available here: running on WASM…");
  const ort = await runtime(task.runtime_base, backend);
  const s = await session(ort, task.model_url, backend, say);
  const input = new ort.Tensor("float32", new Float32Array(await fetchBytes(task.input_url)), task.input_shape);
  const feeds = { [task.input_name]: input };
  say("Warming up…");
  const { result, latencies } = await timeRuns(s, feeds, task, say, "In your browser");
  const out = result[s.outputNames[0]];
  const outputs = Array.from(out.data ?? (await out.getData()));
  return { request_id: task.request_id, backend, outputs, latencies_ms: latencies };
}

export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const line = parentElement.querySelector(".ofa-browser-status");
  const bar = parentElement.querySelector(".ofa-browser-progress");
  const say = (text) => { if (line) line.textContent = text; };
  if (!data || !data.request_id) return;
  const host = parentElement.host ?? parentElement;
  if (host.dataset.ofaRequest === data.request_id) return; // already measured (or measuring) on this element
  host.dataset.ofaRequest = data.request_id;
  const progress = (done, total, text) => {
    if (bar) { bar.hidden = false; bar.max = total; bar.value = done; }
    say(text);
  };
  const work = data.kind === "profile" ? profile(data, progress) : measure(data, say);
  work
    .then((report) => {
      if (host.dataset.ofaRequest !== data.request_id) return; // a newer run was asked for meanwhile
      say(data.kind === "profile" ? "Profiled in your browser." : "Measured in your browser.");
      setStateValue("report", JSON.stringify(report));
    })
    .catch((err) => {
      if (host.dataset.ofaRequest !== data.request_id) return;
      say("Your browser could not run the subnet.");
      setStateValue("report", JSON.stringify({ request_id: data.request_id, error: String(err && err.message || err) }));
    });
}
