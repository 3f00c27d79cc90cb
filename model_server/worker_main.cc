#include "model_server/worker_main.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "model_server/model_runner.h"
#include "model_server/protocol.h"
#include "model_server/worker_core.h"

namespace sg::serve {
namespace {

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    close(fd);
    return -1;
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Send(int fd, MessageType type, std::string text) {
  Message m;
  m.type = type;
  m.text = std::move(text);
  return WriteFrame(fd, EncodeMessage(m));
}

}  // namespace

int RunWorker(const WorkerArgs& args) {
  // Thread pools are sized before anything in libtorch starts one.
  ConfigureTorchThreads(args.threads, args.interop_threads);
  ConfigureInferenceProcess();
  int fd = Connect(args.socket_path);
  if (fd < 0) {
    spdlog::error("worker: cannot connect to {}: {}", args.socket_path, std::strerror(errno));
    return 4;
  }
  ModelConfig model;
  try {
    model = ModelConfigFromJson(args.spec);
  } catch (const std::exception& e) {
    Send(fd, MessageType::kFatal, std::string("bad worker spec: ") + e.what());
    return 3;
  }
  Labels labels;
  std::string error;
  if (!model.labels_path.empty() && !LoadLabels(model.labels_path, &labels, &error)) {
    Send(fd, MessageType::kFatal, "model \"" + model.name + "\": " + error);
    return 3;
  }
  // The slot's shared batch memory, where the front puts preprocessed samples (read-only here;
  // its size is fixed for the slot's life).
  std::string_view shared;
  if (args.batch_memory_fd >= 0) {
    struct stat st {};
    void* mapped = MAP_FAILED;
    if (fstat(args.batch_memory_fd, &st) == 0 && st.st_size > 0) {
      mapped = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED,
                    args.batch_memory_fd, 0);
    }
    if (mapped == MAP_FAILED) {
      Send(fd, MessageType::kFatal,
           std::string("cannot map the shared batch memory: ") + std::strerror(errno));
      return 3;
    }
    shared = std::string_view(static_cast<const char*>(mapped), static_cast<size_t>(st.st_size));
    close(args.batch_memory_fd);  // the mapping stays
  }
  auto runner = LoadTorchScriptModel(model, &error);
  if (!runner) {
    Send(fd, MessageType::kFatal, error);
    return 3;
  }
  // The same model read as raw tensors, for the Open Inference Protocol endpoints.
  ModelConfig raw_model = model;
  raw_model.handler = HandlerKind::kTensor;
  raw_model.input_shape = ExpectedInputShape(model);
  nlohmann::json ready = {{"pid", getpid()},
                          {"threads", TorchIntraOpThreads()},
                          {"interop_threads", args.interop_threads}};
  if (!Send(fd, MessageType::kReady, ready.dump())) return 0;

  // One thread does it all: the batch the front sends ahead (dispatch_ahead) waits in the
  // socket, its samples in the shared batch memory, and is read as soon as the current batch is
  // answered. A reader thread would only add wake-ups on the worker's CPUs.
  std::string payload;
  while (true) {
    auto r = ReadFrame(fd, &payload);
    if (r != ReadResult::kOk) break;  // the front closed the socket: stop
    Message request;
    if (!DecodeMessage(payload, &request, &error) || request.type != MessageType::kBatch) {
      spdlog::error("worker: bad message from the front: {}", error);
      break;
    }
    // Handler inputs, raw tensors (Open Inference Protocol) and samples the front preprocessed
    // (inline or in the shared batch memory) run as separate batches.
    std::vector<HandlerReply> replies(request.items.size());
    std::vector<std::pair<int, std::string_view>> inputs;  // kind (-1: answered), body
    BatchTimings timings;
    for (size_t i = 0; i < request.items.size(); ++i) {
      int kind = request.items[i].status;
      std::string_view body = request.items[i].body;
      if (kind == static_cast<int>(InputKind::kPreprocessedShared)) {
        uint64_t offset = 0, size = 0;
        if (!DecodeSharedRef(body, &offset, &size) || !shared.data() || offset > shared.size() ||
            size > shared.size() - offset) {
          replies[i] = ErrorReply(500, "InternalServerError", "bad shared batch memory reference");
          kind = -1;
        } else {
          kind = static_cast<int>(InputKind::kPreprocessed);
          body = shared.substr(offset, size);
        }
      } else if (kind < 0 || kind > static_cast<int>(InputKind::kPreprocessed)) {
        replies[i] =
            ErrorReply(500, "InternalServerError", "unknown input kind " + std::to_string(kind));
        kind = -1;
      }
      inputs.emplace_back(kind, body);
    }
    for (auto kind : {InputKind::kHandler, InputKind::kRawTensor, InputKind::kPreprocessed}) {
      std::vector<std::string_view> bodies;
      std::vector<size_t> index;
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (inputs[i].first != static_cast<int>(kind)) continue;
        bodies.push_back(inputs[i].second);
        index.push_back(i);
      }
      if (bodies.empty()) continue;
      auto part = HandleBatch(*runner, kind == InputKind::kRawTensor ? raw_model : model, labels,
                              bodies, &timings, kind == InputKind::kPreprocessed);
      for (size_t k = 0; k < index.size(); ++k) replies[index[k]] = std::move(part[k]);
    }
    Message response;
    response.type = MessageType::kResults;
    response.timings = timings;
    for (size_t i = 0; i < replies.size(); ++i) {
      response.items.push_back(
          {request.items[i].id, replies[i].status, std::move(replies[i].body)});
    }
    if (!WriteFrame(fd, EncodeMessage(response))) break;
  }
  close(fd);
  return 0;
}

}  // namespace sg::serve
