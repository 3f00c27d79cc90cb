// The front <-> worker protocol over a Unix stream socket: length-prefixed frames.
//   frame   = u32 little-endian payload length, payload (at most kMaxFrame bytes)
//   payload = u8 type, then per type:
//     kReady   (worker -> front)  text: JSON {"pid", "threads", "interop_threads"}
//     kFatal   (worker -> front)  text: why the worker cannot serve (it exits next)
//     kBatch   (front -> worker)  u32 n, n x {u64 id, u16 kind, u32 size, bytes}: inputs
//              (kind 0: a request body for the model's handler; 1: a raw tensor; 2: a sample
//              the front preprocessed, StartEncodedSample; 3: the same in shared memory; see
//              InputKind)
//     kResults (worker -> front)  u32 n, n x {u64 id, u16 status, u32 size, bytes}: replies,
//              then a fixed trailer of 3 x u64: the batch's preprocessing, forward and
//              postprocessing times in microseconds, measured by the worker (BatchTimings)
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model_server/image.h"

namespace sg::serve {

inline constexpr uint32_t kMaxFrame = 1u << 30;

enum class MessageType : uint8_t { kReady = 1, kFatal = 2, kBatch = 3, kResults = 4 };

// How a worker reads a batch item.
enum class InputKind : int {
  kHandler = 0,    // the model's handler (image bytes, tensor JSON)
  kRawTensor = 1,  // {"data", "shape"} in, raw output tensor out (Open Inference Protocol)
  // A sample the front already preprocessed for the model's image handler (StartEncodedSample): the
  // worker runs the forward and the handler's postprocessing only (front CPUs, see cpu_plan.h).
  kPreprocessed = 2,
  // The same, with the body in the worker's shared batch memory (a memfd both processes map):
  // the item's bytes are EncodeSharedRef(offset, size) of the encoded sample there.
  kPreprocessedShared = 3,
};

std::string EncodeSharedRef(uint64_t offset, uint64_t size);
// False when `body` is not 16 bytes.
bool DecodeSharedRef(std::string_view body, uint64_t* offset, uint64_t* size);

struct WireItem {
  uint64_t id = 0;
  int status = 0;  // results: HTTP status; batches: InputKind
  std::string body;
};

// Where a worker spent one batch, by steady_clock (kResults). Preprocessing: every body's
// decode/parse, resize and normalisation; forward: every runner call (retries of a failed
// batch included); postprocessing: every output turned into a reply.
struct BatchTimings {
  uint64_t preprocess_us = 0;
  uint64_t forward_us = 0;
  uint64_t postprocess_us = 0;
};

struct Message {
  MessageType type = MessageType::kReady;
  std::string text;             // kReady, kFatal
  std::vector<WireItem> items;  // kBatch, kResults
  BatchTimings timings;         // kResults
};

// A preprocessed sample as a batch item's body: u8 rank (1-8), rank x u64 dims, then the
// float32 values (little-endian IEEE 754), exactly as many as the dims say. This writes the
// header for `shape` in `out`, followed by room for the values (zeros), and returns where they
// go (unaligned), so a sample is preprocessed straight into it.
std::byte* StartEncodedSample(const std::vector<int64_t>& shape, std::string* out);
// The same encoding of a whole SampleTensor, for the tests that compare bodies with it.
std::string EncodeSampleForTest(const SampleTensor& sample);
// The size of that encoding for a sample of `rank` dims and `values` floats.
size_t EncodedSampleBytes(size_t rank, size_t values);
// False with `error` when `body` is not exactly such an encoding; else `out` views the values
// inside `body` (no copy).
bool DecodeSampleView(std::string_view body, SampleView* out, std::string* error);

std::string EncodeMessage(const Message& message);
// A kBatch payload straight from the bodies (EncodeMessage would need them copied into a
// Message first): byte for byte what EncodeMessage gives for the same items.
struct BatchItemView {
  uint64_t id = 0;
  int kind = 0;  // InputKind
  std::string_view body;
};
std::string EncodeBatch(const std::vector<BatchItemView>& items);
// False with `error` on a truncated or malformed payload.
bool DecodeMessage(std::string_view payload, Message* out, std::string* error);

// Blocking frame I/O on a connected stream socket. WriteFrame: false when the peer is gone.
bool WriteFrame(int fd, std::string_view payload);
enum class ReadResult { kOk, kClosed, kTimeout, kError };
// Waits until `deadline` (time_point::max(): forever) for one whole frame. After kTimeout the
// stream may be left in the middle of a frame: the connection cannot be read from again.
ReadResult ReadFrame(
    int fd, std::string* payload,
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());

}  // namespace sg::serve
