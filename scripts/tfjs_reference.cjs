// Runs a TF.js graph model with TensorFlow.js itself (pure-JS CPU backend),
// the way the `human` library runs it, to give the ONNX conversion an
// independent reference. Used by scripts/fetch_models.sh; needs NODE_PATH
// pointing at a node_modules with @tensorflow/tfjs-{core,converter,backend-cpu}.
//
//   node tfjs_reference.cjs MODEL.json INPUT.f32 D0,D1,D2,D3 OUT_PREFIX [OUTPUT_NAME...]
//
// Writes OUT_PREFIX.<i>.f32 (little-endian float32) per output and
// OUT_PREFIX.json with the names and shapes.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const { loadGraphModel } = require('@tensorflow/tfjs-converter');

async function main() {
  const [modelJson, inputFile, dimsArg, outPrefix, ...names] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const j = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const bins = j.weightsManifest.flatMap((g) => g.paths);
  const buf = Buffer.concat(bins.map((p) => fs.readFileSync(path.join(path.dirname(modelJson), p))));
  const weightData = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const model = await loadGraphModel({
    load: async () => ({
      modelTopology: j.modelTopology, format: j.format, generatedBy: j.generatedBy,
      convertedBy: j.convertedBy, signature: j.signature,
      weightSpecs: j.weightsManifest.flatMap((g) => g.weights), weightData,
    }),
  });
  const dims = dimsArg.split(',').map(Number);
  const raw = fs.readFileSync(inputFile);
  const input = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), dims, 'float32');
  const outNames = names.length ? names : Object.keys(j.signature.outputs);
  const t0 = Date.now();
  let outs = model.execute(input, outNames);
  if (!Array.isArray(outs)) outs = [outs];
  const meta = [];
  for (let i = 0; i < outs.length; i++) {
    const data = await outs[i].data();
    fs.writeFileSync(`${outPrefix}.${i}.f32`, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    meta.push({ name: outNames[i], shape: outs[i].shape });
  }
  fs.writeFileSync(`${outPrefix}.json`, JSON.stringify(meta));
  console.error(`[tfjs] ${path.basename(modelJson)}: ${outs.length} outputs in ${Date.now() - t0} ms (tfjs ${tf.version_core}, cpu backend)`);
}
main().catch((e) => { console.error(e); process.exit(1); });
