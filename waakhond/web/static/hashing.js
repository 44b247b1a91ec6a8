// Hashing on the user's device: MD5, SHA-256 and PDQ of a file, computed in the browser so a
// victim portal can send hashes instead of the image itself.
//
// PDQ (Meta's perceptual hash) follows the reference algorithm as the gateway runs it:
// the pdqhash Python package (ThreatExchange's C++) called on Pillow's decode of the file.
// Every step below mirrors that pipeline, including its float32 arithmetic, so the same
// pixels give the same 256 bits; what can still differ is the image decoder (Chromium's
// versus Pillow's), which moves a few bits at most.
//
// Plain ES module: no build step, no dependencies, nothing leaves the device.

// ---------------------------------------------------------------------------------------
// MD5 (RFC 1321). WebCrypto has no MD5, and hash exchanges still ask for it.

// Per-round left-rotation amounts: four per round, repeated over each round's 16 steps.
const MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
// K[i] = floor(|sin(i + 1)| * 2^32), as the RFC defines them (the tests check the result
// against Python's hashlib, which would catch a libm that rounds one differently).
const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32));

/** Mix one 64-byte block at `offset` of `view` into the four-word `state`. */
function md5Block(state, view, offset) {
  const words = new Int32Array(16);
  for (let w = 0; w < 16; w++) words[w] = view.getInt32(offset + 4 * w, true);
  let [a, b, c, d] = state;
  for (let i = 0; i < 64; i++) {
    const round = i >> 4;
    let f;
    let g;
    if (round === 0) { f = (b & c) | (~b & d); g = i; }
    else if (round === 1) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
    else if (round === 2) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
    else { f = c ^ (b | ~d); g = (7 * i) & 15; }
    // The sum stays below 2^35, exact in a double; `| 0` then reduces it modulo 2^32.
    const sum = (a + f + MD5_K[i] + words[g]) | 0;
    const shift = MD5_SHIFTS[round * 4 + (i & 3)];
    a = d;
    d = c;
    c = b;
    b = (b + ((sum << shift) | (sum >>> (32 - shift)))) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
}

/** The padded tail: the bytes after the last full block, 0x80, zeros, the bit length. */
function md5Tail(bytes, fullBlocks) {
  const rest = bytes.subarray(fullBlocks * 64);
  const tail = new Uint8Array(rest.length < 56 ? 64 : 128);
  tail.set(rest);
  tail[rest.length] = 0x80;
  const view = new DataView(tail.buffer);
  // Length in bits as a 64-bit little-endian number; split because it can pass 2^32.
  const bits = bytes.length * 8;
  view.setUint32(tail.length - 8, bits >>> 0, true);
  view.setUint32(tail.length - 4, Math.floor(bits / 2 ** 32), true);
  return view;
}

export async function md5Hex(arrayBuffer) {
  const bytes = new Uint8Array(arrayBuffer);
  const state = new Int32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  // Full blocks straight from the input (no padded copy of a large file), then the tail.
  const fullBlocks = Math.floor(bytes.length / 64);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let block = 0; block < fullBlocks; block++) md5Block(state, view, block * 64);
  const tail = md5Tail(bytes, fullBlocks);
  for (let offset = 0; offset < tail.byteLength; offset += 64) md5Block(state, tail, offset);
  // The digest is the four state words, each written little-endian.
  return toHex(new Uint8Array(state.buffer));
}

export async function sha256Hex(arrayBuffer) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", arrayBuffer)));
}

function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------
// PDQ. All buffers are Float32Array and every running sum goes through Math.fround, because
// the reference works in C++ floats: doubles would round differently and, for a coefficient
// close to the median, flip a bit.

const PDQ_SIZE = 64; // the image is blurred and sampled down to 64 x 64
const PDQ_DCT_SIZE = 16; // the hash keeps the 16 x 16 lowest frequencies (minus DC)
const PDQ_MIN_SIDE = 5; // the reference gives an all-zero hash of quality 0 below this
const JAROSZ_PASSES = 2; // two box-filter passes per axis approximate a tent filter

// Row i, column j: sqrt(2/64) * cos(pi/2/64 * (i+1) * (2j+1)). Rows start at frequency 1,
// which skips the DC term. The scale factor is a float in the reference, the cosine a double.
const DCT_MATRIX = (() => {
  const matrix = new Float32Array(PDQ_DCT_SIZE * PDQ_SIZE);
  const scale = Math.fround(Math.sqrt(2 / PDQ_SIZE));
  for (let i = 0; i < PDQ_DCT_SIZE; i++) {
    for (let j = 0; j < PDQ_SIZE; j++) {
      matrix[i * PDQ_SIZE + j] = scale * Math.cos((Math.PI / 2 / PDQ_SIZE) * (i + 1) * (2 * j + 1));
    }
  }
  return matrix;
})();

/** Luminance of RGBA pixels. The Python binding computes it in float64 with these constants
 * (R, then + G, then + B) and only then casts to float32; the same order here gives the same
 * doubles. Alpha is ignored, as the gateway drops it. */
function lumaFromRgba(rgba, width, height) {
  const luma = new Float32Array(width * height);
  for (let p = 0, q = 0; p < luma.length; p++, q += 4) {
    luma[p] = 0.299 * rgba[q] + 0.587 * rgba[q + 1] + 0.114 * rgba[q + 2];
  }
  return luma;
}

/** Box-filter width per pass: half of one output cell, rounded up (two passes cover it). */
function jaroszWindow(oldSide, newSide) {
  return Math.floor((oldSide + 2 * newSide - 1) / (2 * newSide));
}

/** A running-mean box filter along one line of `length` values `stride` apart. Near the ends
 * the window is cut short and the mean is over what is inside, as in the reference. */
function box1d(input, output, start, length, stride, window) {
  const half = Math.floor((window + 2) / 2);
  let sum = 0;
  let count = 0;
  let read = start; // right edge: values enter the window here
  let drop = start; // left edge: values leave the window here
  let write = start;
  for (let i = 0; i < half - 1; i++, read += stride) { // fill, no output yet
    sum = Math.fround(sum + input[read]);
    count++;
  }
  for (let i = 0; i < window - half + 1; i++, read += stride, write += stride) { // growing
    sum = Math.fround(sum + input[read]);
    count++;
    output[write] = sum / count;
  }
  for (let i = 0; i < length - window; i++, read += stride, drop += stride, write += stride) {
    sum = Math.fround(sum + input[read]); // full window sliding
    sum = Math.fround(sum - input[drop]);
    output[write] = sum / count;
  }
  for (let i = 0; i < half - 1; i++, drop += stride, write += stride) { // shrinking
    sum = Math.fround(sum - input[drop]);
    count--;
    output[write] = sum / count;
  }
}

/** Blur `luma` in place: per pass, rows into `scratch`, then columns back into `luma`. */
function jaroszFilter(luma, scratch, width, height) {
  const alongRows = jaroszWindow(width, PDQ_SIZE);
  const alongCols = jaroszWindow(height, PDQ_SIZE);
  for (let pass = 0; pass < JAROSZ_PASSES; pass++) {
    for (let row = 0; row < height; row++) box1d(luma, scratch, row * width, width, 1, alongRows);
    for (let col = 0; col < width; col++) box1d(scratch, luma, col, height, width, alongCols);
  }
}

/** Sample the blurred image at the centres of a 64 x 64 grid of cells. */
function decimate(luma, width, height) {
  const out = new Float32Array(PDQ_SIZE * PDQ_SIZE);
  for (let i = 0; i < PDQ_SIZE; i++) {
    const row = Math.floor(((i + 0.5) * height) / PDQ_SIZE);
    for (let j = 0; j < PDQ_SIZE; j++) {
      const col = Math.floor(((j + 0.5) * width) / PDQ_SIZE);
      out[i * PDQ_SIZE + j] = luma[row * width + col];
    }
  }
  return out;
}

/** 0..100: how much significant gradient the 64 x 64 image has (flat images hash poorly).
 * Each neighbour difference is scaled to percent of full range and truncated, in floats. */
function qualityOf(small) {
  const step = (u, v) => Math.abs(Math.trunc(Math.fround(Math.fround(Math.fround(u - v) * 100) / 255)));
  let gradientSum = 0;
  for (let i = 0; i < PDQ_SIZE - 1; i++) {
    for (let j = 0; j < PDQ_SIZE; j++) {
      gradientSum += step(small[i * PDQ_SIZE + j], small[(i + 1) * PDQ_SIZE + j]);
    }
  }
  for (let i = 0; i < PDQ_SIZE; i++) {
    for (let j = 0; j < PDQ_SIZE - 1; j++) {
      gradientSum += step(small[i * PDQ_SIZE + j], small[i * PDQ_SIZE + j + 1]);
    }
  }
  return Math.min(100, Math.floor(gradientSum / 90));
}

/** B = D A D^T: the 16 x 16 low frequencies of the 64 x 64 image, summed in the reference's
 * order (T = D A first, then T D^T). */
function dct64To16(small) {
  const temp = new Float32Array(PDQ_DCT_SIZE * PDQ_SIZE);
  for (let i = 0; i < PDQ_DCT_SIZE; i++) {
    for (let j = 0; j < PDQ_SIZE; j++) {
      let sum = 0;
      for (let k = 0; k < PDQ_SIZE; k++) {
        sum = Math.fround(sum + Math.fround(DCT_MATRIX[i * PDQ_SIZE + k] * small[k * PDQ_SIZE + j]));
      }
      temp[i * PDQ_SIZE + j] = sum;
    }
  }
  const coefficients = new Float32Array(PDQ_DCT_SIZE * PDQ_DCT_SIZE);
  for (let i = 0; i < PDQ_DCT_SIZE; i++) {
    for (let j = 0; j < PDQ_DCT_SIZE; j++) {
      let sum = 0;
      for (let k = 0; k < PDQ_SIZE; k++) {
        sum = Math.fround(sum + Math.fround(temp[i * PDQ_SIZE + k] * DCT_MATRIX[j * PDQ_SIZE + k]));
      }
      coefficients[i * PDQ_DCT_SIZE + j] = sum;
    }
  }
  return coefficients;
}

/** One bit per coefficient: above the median or not. The reference's median (Torben's
 * method) of 256 values is the 128th smallest, i.e. the lower of the two middle ones. */
function hashHex(coefficients) {
  const median = Float32Array.from(coefficients).sort()[coefficients.length / 2 - 1];
  // Hex as exchanges write it (and as the gateway's pdq_hex does): coefficient 255 is the
  // most significant bit of the first byte, coefficient 0 the least significant of the last.
  let hex = "";
  for (let top = coefficients.length - 1; top >= 0; top -= 8) {
    let byte = 0;
    for (let k = top; k > top - 8; k--) byte = (byte << 1) | (coefficients[k] > median ? 1 : 0);
    hex += byte.toString(16).padStart(2, "0");
  }
  return hex;
}

/** PDQ of decoded RGBA pixels (row-major, 4 bytes a pixel): {pdq: 64 hex chars, quality}. */
export function pdqFromRgba(rgba, width, height) {
  if (width < PDQ_MIN_SIDE || height < PDQ_MIN_SIDE) {
    return { pdq: "0".repeat(64), quality: 0 };
  }
  const luma = lumaFromRgba(rgba, width, height);
  let small;
  if (width === PDQ_SIZE && height === PDQ_SIZE) {
    small = luma; // already 64 x 64: the reference hashes it as it is
  } else {
    jaroszFilter(luma, new Float32Array(luma.length), width, height);
    small = decimate(luma, width, height);
  }
  return { pdq: hashHex(dct64To16(small)), quality: qualityOf(small) };
}

/** Decode a blob at full resolution to RGBA, as the gateway decodes it with Pillow:
 * turned upright by its EXIF orientation (the gateway applies exif_transpose), colour values
 * as stored (Pillow ignores ICC profiles, so no colour conversion here either), and
 * unpremultiplied. */
async function decodeRgba(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  try {
    const { width, height } = bitmap;
    const canvas = typeof OffscreenCanvas === "function"
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement("canvas"), { width, height });
    // willReadFrequently keeps the canvas in memory on the CPU, where reading it back is exact.
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    return { rgba: context.getImageData(0, 0, width, height).data, width, height };
  } finally {
    bitmap.close();
  }
}

export async function pdqOfBlob(blob) {
  const { rgba, width, height } = await decodeRgba(blob);
  return pdqFromRgba(rgba, width, height);
}

/** Everything the portal sends for one file. A file the browser cannot decode as an image
 * (a video, say) still gets its MD5 and SHA-256; its pdq and quality are null. */
export async function hashFile(file) {
  const bytes = await file.arrayBuffer();
  const [md5, sha256, perceptual] = await Promise.all([
    md5Hex(bytes),
    sha256Hex(bytes),
    pdqOfBlob(file).catch(() => ({ pdq: null, quality: null })),
  ]);
  return { name: file.name, size: file.size, md5, sha256, ...perceptual };
}
