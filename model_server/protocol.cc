#include "model_server/protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

namespace sg::serve {
namespace {

template <typename T>
void Put(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

template <typename T>
bool Get(std::string_view& in, T* value) {
  if (in.size() < sizeof(T)) return false;
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<T>(static_cast<uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(sizeof(T));
  *value = v;
  return true;
}

// Reads exactly `size` bytes before `deadline`. Reads first and polls only when nothing is
// there: a frame that has arrived costs one recv, not a poll and a recv per part.
ReadResult ReadExactly(int fd, char* data, size_t size,
                       std::chrono::steady_clock::time_point deadline) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = recv(fd, data + done, size - done, MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return ReadResult::kClosed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return errno == ECONNRESET ? ReadResult::kClosed : ReadResult::kError;
    }
    int timeout_ms = -1;
    if (deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return ReadResult::kTimeout;
      timeout_ms = static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ReadResult::kError;
    }
    if (r == 0) return ReadResult::kTimeout;
  }
  return ReadResult::kOk;
}

// One batch or result item: u64 id, u16 kind or status, u32 size, bytes.
void PutItem(std::string& out, uint64_t id, int kind_or_status, std::string_view body) {
  Put<uint64_t>(out, id);
  Put<uint16_t>(out, static_cast<uint16_t>(kind_or_status));
  Put<uint32_t>(out, static_cast<uint32_t>(body.size()));
  out += body;
}

}  // namespace

static_assert(std::endian::native == std::endian::little,
              "the sample encoding keeps float32 values as they are in memory");

size_t EncodedSampleBytes(size_t rank, size_t values) {
  return 1 + sizeof(uint64_t) * rank + sizeof(float) * values;
}

std::byte* StartEncodedSample(const std::vector<int64_t>& shape, std::string* out) {
  size_t values = 1;
  for (int64_t d : shape) values *= static_cast<size_t>(d);
  out->clear();
  out->reserve(EncodedSampleBytes(shape.size(), values));
  out->push_back(static_cast<char>(shape.size()));
  for (int64_t d : shape) Put<uint64_t>(*out, static_cast<uint64_t>(d));
  size_t header = out->size();
  out->resize(header + sizeof(float) * values);
  return reinterpret_cast<std::byte*>(out->data() + header);
}

std::string EncodeSampleForTest(const SampleTensor& sample) {
  std::string out;
  std::byte* values = StartEncodedSample(sample.shape, &out);
  std::memcpy(values, sample.values.data(), sizeof(float) * sample.values.size());
  return out;
}

bool DecodeSampleView(std::string_view body, SampleView* out, std::string* error) {
  uint8_t rank = 0;
  if (!Get(body, &rank) || rank < 1 || rank > 8) {
    *error = "preprocessed sample: bad rank";
    return false;
  }
  out->shape.clear();
  uint64_t numel = 1;
  for (int i = 0; i < rank; ++i) {
    uint64_t d = 0;
    if (!Get(body, &d) || d == 0 || d > (uint64_t{1} << 32) || numel > (uint64_t{1} << 32) / d) {
      *error = "preprocessed sample: bad shape";
      return false;
    }
    numel *= d;
    out->shape.push_back(static_cast<int64_t>(d));
  }
  if (body.size() != numel * sizeof(float)) {
    *error = "preprocessed sample: " + std::to_string(body.size()) + " bytes of values for " +
             std::to_string(numel) + " floats";
    return false;
  }
  out->data = reinterpret_cast<const std::byte*>(body.data());
  out->count = numel;
  return true;
}

std::string EncodeSharedRef(uint64_t offset, uint64_t size) {
  std::string out;
  Put<uint64_t>(out, offset);
  Put<uint64_t>(out, size);
  return out;
}

bool DecodeSharedRef(std::string_view body, uint64_t* offset, uint64_t* size) {
  return body.size() == 16 && Get(body, offset) && Get(body, size);
}

std::string EncodeBatch(const std::vector<BatchItemView>& items) {
  size_t size = 1 + 4;
  for (const auto& item : items) size += 8 + 2 + 4 + item.body.size();
  std::string out;
  out.reserve(size);
  out.push_back(static_cast<char>(MessageType::kBatch));
  Put<uint32_t>(out, static_cast<uint32_t>(items.size()));
  for (const auto& item : items) PutItem(out, item.id, item.kind, item.body);
  return out;
}

std::string EncodeMessage(const Message& m) {
  std::string out;
  out.push_back(static_cast<char>(m.type));
  if (m.type == MessageType::kReady || m.type == MessageType::kFatal) {
    out += m.text;
    return out;
  }
  Put<uint32_t>(out, static_cast<uint32_t>(m.items.size()));
  for (const auto& item : m.items) PutItem(out, item.id, item.status, item.body);
  if (m.type == MessageType::kResults) {
    Put<uint64_t>(out, m.timings.preprocess_us);
    Put<uint64_t>(out, m.timings.forward_us);
    Put<uint64_t>(out, m.timings.postprocess_us);
  }
  return out;
}

bool DecodeMessage(std::string_view in, Message* out, std::string* error) {
  uint8_t type = 0;
  if (!Get(in, &type) || type < 1 || type > 4) {
    *error = "bad message type";
    return false;
  }
  out->type = static_cast<MessageType>(type);
  out->items.clear();
  out->text.clear();
  out->timings = BatchTimings();
  if (out->type == MessageType::kReady || out->type == MessageType::kFatal) {
    out->text = std::string(in);
    return true;
  }
  uint32_t n = 0;
  if (!Get(in, &n) || n > in.size()) {
    *error = "truncated message";
    return false;
  }
  for (uint32_t i = 0; i < n; ++i) {
    WireItem item;
    uint32_t size = 0;
    uint16_t status = 0;
    if (!Get(in, &item.id) || !Get(in, &status) || !Get(in, &size) || size > in.size()) {
      *error = "truncated message";
      return false;
    }
    item.status = status;
    item.body = std::string(in.substr(0, size));
    in.remove_prefix(size);
    out->items.push_back(std::move(item));
  }
  if (out->type == MessageType::kResults &&
      (!Get(in, &out->timings.preprocess_us) || !Get(in, &out->timings.forward_us) ||
       !Get(in, &out->timings.postprocess_us))) {
    *error = "truncated message";
    return false;
  }
  if (!in.empty()) {
    *error = "trailing bytes in message";
    return false;
  }
  return true;
}

bool WriteFrame(int fd, std::string_view payload) {
  if (payload.size() > kMaxFrame) return false;
  std::string header;
  Put<uint32_t>(header, static_cast<uint32_t>(payload.size()));
  // Header and payload in one sendmsg: one syscall, and the reader wakes once for the frame.
  iovec parts[2] = {{header.data(), header.size()},
                    {const_cast<char*>(payload.data()), payload.size()}};
  size_t first = 0;
  while (first < 2) {
    msghdr message{};
    message.msg_iov = parts + first;
    message.msg_iovlen = 2 - first;
    ssize_t n = sendmsg(fd, &message, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    // Skip what was sent.
    auto sent = static_cast<size_t>(n);
    while (first < 2 && sent >= parts[first].iov_len) {
      sent -= parts[first].iov_len;
      ++first;
    }
    if (first < 2) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + sent;
      parts[first].iov_len -= sent;
    }
  }
  return true;
}

ReadResult ReadFrame(int fd, std::string* payload, std::chrono::steady_clock::time_point deadline) {
  char header[4];
  auto r = ReadExactly(fd, header, 4, deadline);
  if (r != ReadResult::kOk) return r;
  std::string_view view(header, 4);
  uint32_t size = 0;
  Get(view, &size);
  if (size > kMaxFrame) return ReadResult::kError;
  payload->resize(size);
  return ReadExactly(fd, payload->data(), size, deadline);
}

}  // namespace sg::serve
