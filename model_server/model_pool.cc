#include "model_server/model_pool.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "common/subprocess.h"
#include "model_server/handler.h"
#include "model_server/protocol.h"

namespace sg::serve {
namespace {

using Clock = std::chrono::steady_clock;

std::string SecondsText(std::chrono::milliseconds d) {
  return FormatDouble(static_cast<double>(d.count()) / 1000.0) + "s";
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  int64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * sysconf(_SC_PAGESIZE);
}

int ListenUnix(const std::string& path, std::string* error) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof addr.sun_path) {
    *error = "cannot create a Unix socket at " + path;
    if (fd >= 0) close(fd);
    return -1;
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1) != 0) {
    *error = "cannot listen on " + path + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

// Bytes of one batch of preprocessed samples when an image model's samples have a fixed size
// (a center crop), else 0.
size_t SharedLaneBytes(const ModelConfig& model) {
  if (model.handler == HandlerKind::kTensor || model.preprocess.crop <= 0) return 0;
  size_t values = static_cast<size_t>(model.preprocess.channels) * model.preprocess.crop *
                  model.preprocess.crop;
  return EncodedSampleBytes(3, values) * static_cast<size_t>(model.batch_size);  // C x H x W
}

}  // namespace

struct ModelPool::Slot {
  int id = 0;
  WorkerCpus cpus;
  std::atomic<bool> stop{false};
  std::thread thread;
  // Guarded by the pool's mutex_.
  std::string status = "STARTING";
  pid_t pid = 0;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  int restarts = 0;
  int threads_reported = 0;
  std::string last_error;
  // The running worker's batches, oldest (running) first. The slot thread pushes at the back
  // and reads the jobs it pushed without the lock; the reader pops the front once answered
  // (std::deque keeps references to the other elements valid).
  std::deque<InFlight> in_flight;
  // Shared batch memory (a memfd the slot's workers inherit and map read-only): two lanes of
  // lane_bytes, so the batch sent ahead never overwrites the one running. Preprocessed samples
  // go there instead of through the socket. fd -1: none (inputs whose size is not fixed).
  int batch_memory_fd = -1;
  char* batch_memory = nullptr;
  size_t lane_bytes = 0;
  uint64_t shared_batches = 0;  // batches sent through it: the lane is this count modulo 2
  bool closing = false;         // the slot thread is closing the connection on purpose
  bool worker_gone = false;     // the reader has ended
  int end_status = 0;           // its verdict for the running batch (0: none was running)
  std::string end_body;
};

ModelPool::ModelPool(ModelConfig model, PoolEnvironment env, PoolMetrics metrics)
    : model_(std::move(model)), env_(std::move(env)), metrics_(metrics) {
  expire_thread_ = std::thread([this] { ExpireLoop(); });
}

ModelPool::~ModelPool() {
  Stop(std::chrono::milliseconds(0));
  {
    std::lock_guard lock(mutex_);
    expire_stop_ = true;
  }
  expire_cv_.notify_all();
  if (expire_thread_.joinable()) expire_thread_.join();
}

void ModelPool::SetWorkers(const std::vector<WorkerCpus>& workers) {
  std::lock_guard slots_lock(slots_mutex_);
  StopSlots(false);
  static std::atomic<int> next_slot_id{9000};  // TorchServe numbers workers from 9000
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  for (const auto& cpus : workers) {
    auto slot = std::make_unique<Slot>();
    slot->id = next_slot_id++;
    slot->cpus = cpus;
    slots_.push_back(std::move(slot));
  }
  for (auto& slot : slots_) {
    Slot* raw = slot.get();
    raw->thread = std::thread([this, raw] { RunSlot(raw); });
  }
}

void ModelPool::StopSlots(bool kill_workers) {
  std::vector<std::unique_ptr<Slot>> old;
  {
    std::lock_guard lock(mutex_);
    for (auto& slot : slots_) {
      slot->stop = true;
      if (kill_workers && in_flight_ > 0 && slot->pid > 0) kill(slot->pid, SIGKILL);
    }
  }
  cv_.notify_all();
  {
    std::lock_guard lock(mutex_);
    old.swap(slots_);
  }
  for (auto& slot : old) {
    if (slot->thread.joinable()) slot->thread.join();
  }
}

ModelPool::SubmitResult ModelPool::Submit(std::string body, JobCallback done, int kind) {
  Job job;
  job.id = next_id_++;
  job.body = std::move(body);
  job.kind = kind;
  job.done = std::move(done);
  job.enqueued = Clock::now();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return SubmitResult::kStopping;
    if (queue_.size() + ahead_ >= static_cast<size_t>(model_.job_queue_size)) {
      return SubmitResult::kQueueFull;
    }
    queue_.push_back(std::move(job));
  }
  // Every slot: whether one may take the job depends on its own pipeline.
  cv_.notify_all();
  return SubmitResult::kQueued;
}

void ModelPool::Stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  // Drain: queued and in-flight jobs get their answers while the workers still run.
  auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty() && in_flight_ == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard slots_lock(slots_mutex_);
    StopSlots(true);
  }
  std::deque<Job> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(queue_);
  }
  for (auto& job : left)
    Finish(job, 503, ErrorBody(503, "ServiceUnavailableException", "server is shutting down"));
}

void ModelPool::CountFrontReply(int status) {
  if (!metrics_.responses) return;
  metrics_.responses->WithLabels({model_.name, std::to_string(status)}).Increment();
}

void ModelPool::Finish(Job& job, int status, std::string body, const BatchTimings* worker) {
  auto now = Clock::now();
  RequestTimings timings;
  timings.total = std::chrono::duration_cast<std::chrono::microseconds>(now - job.enqueued);
  if (job.dispatched != Clock::time_point()) {
    timings.queue =
        std::chrono::duration_cast<std::chrono::microseconds>(job.dispatched - job.enqueued);
  }
  if (worker) {
    timings.has_worker = true;
    timings.preprocess = std::chrono::microseconds(worker->preprocess_us);
    timings.forward = std::chrono::microseconds(worker->forward_us);
    timings.postprocess = std::chrono::microseconds(worker->postprocess_us);
  }
  if (metrics_.latency) {
    auto total = now - job.enqueued;
    metrics_.latency->Observe(std::chrono::duration<double>(total).count());
    if (job.dispatched != Clock::time_point()) {
      metrics_.queue_latency->Observe(
          std::chrono::duration<double>(job.dispatched - job.enqueued).count());
    }
    metrics_.responses->WithLabels({model_.name, std::to_string(status)}).Increment();
  }
  auto done = std::move(job.done);
  job.done = nullptr;
  if (done) done(status, std::move(body), timings);
}

void ModelPool::ExpireLoop() {
  std::unique_lock lock(mutex_);
  while (!expire_stop_) {
    expire_cv_.wait_for(lock, std::chrono::milliseconds(20));
    auto now = Clock::now();
    std::vector<Job> expired;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (now - it->enqueued >= model_.response_timeout) {
        expired.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (expired.empty()) continue;
    lock.unlock();
    for (auto& job : expired) {
      Finish(job, 504,
             ErrorBody(504, "RequestTimeout",
                       "no worker of model \"" + model_.name + "\" answered within " +
                           SecondsText(model_.response_timeout)));
    }
    lock.lock();
  }
}

ModelPool::InFlight* ModelPool::TakeBatch(Slot* slot) {
  std::unique_lock lock(mutex_);
  const size_t depth = model_.dispatch_ahead ? 2 : 1;
  cv_.wait(lock, [&] {
    if (slot->stop || slot->worker_gone) return true;
    if (slot->in_flight.size() >= depth) return false;
    // Ahead of a running batch only a full one goes: a partial batch keeps filling in the queue
    // until the worker is free.
    size_t needed = slot->in_flight.empty() ? 1 : static_cast<size_t>(model_.batch_size);
    return queue_.size() >= needed;
  });
  if (slot->stop || slot->worker_gone) return nullptr;
  std::vector<Job> batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  if (model_.batch_size > 1) {
    auto deadline = batch[0].enqueued + model_.max_batch_delay;
    while (batch.size() < static_cast<size_t>(model_.batch_size)) {
      if (!queue_.empty()) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
        continue;
      }
      if (!cv_.wait_until(lock, deadline, [&] { return slot->stop.load() || !queue_.empty(); })) {
        break;
      }
      if (slot->stop) break;
    }
  }
  auto now = Clock::now();
  for (auto& job : batch) job.dispatched = now;
  in_flight_ += static_cast<int>(batch.size());
  if (!slot->in_flight.empty()) ahead_ += batch.size();
  auto deadline = batch[0].enqueued + model_.response_timeout;
  slot->in_flight.push_back({std::move(batch), deadline});
  return &slot->in_flight.back();
}

void ModelPool::Requeue(std::vector<Job>& batch) {
  {
    std::lock_guard lock(mutex_);
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      it->dispatched = Clock::time_point();
      queue_.push_front(std::move(*it));
    }
    in_flight_ -= static_cast<int>(batch.size());
  }
  cv_.notify_all();
}

void ModelPool::SetStatus(Slot* slot, const std::string& status, pid_t pid) {
  {
    std::lock_guard lock(mutex_);
    slot->status = status;
    slot->pid = pid;
  }
  cv_.notify_all();
}

bool ModelPool::StartWorker(Slot* slot, std::unique_ptr<Subprocess>* process, int* fd) {
  std::string path =
      env_.socket_dir + "/w" + std::to_string(slot->id) + "-" + std::to_string(++generation_);
  std::string error;
  int listen_fd = ListenUnix(path, &error);
  auto fail = [&](const std::string& why) {
    std::lock_guard lock(mutex_);
    slot->last_error = why;
    slot->status = "FAILED";
    slot->pid = 0;
    return false;
  };
  if (listen_fd < 0) return fail(error);
  std::vector<std::string> argv = {env_.self_exe,
                                   "worker",
                                   "--socket",
                                   path,
                                   "--spec",
                                   ModelConfigToJson(model_),
                                   "--threads",
                                   std::to_string(slot->cpus.threads),
                                   "--interop-threads",
                                   "1",
                                   "--log-level",
                                   env_.log_level};
  if (slot->batch_memory_fd >= 0) {
    argv.push_back("--batch-memory-fd");
    argv.push_back(std::to_string(slot->batch_memory_fd));
  }
  SpawnOptions options;
  options.cpu_affinity = slot->cpus.cpus;
  if (slot->batch_memory_fd >= 0) options.keep_fds = {slot->batch_memory_fd};
  // libgomp would pin every thread of every worker to the same CPUs; the plan decides instead.
  options.unset_env = {"OMP_PROC_BIND", "GOMP_CPU_AFFINITY", "OMP_PLACES", "KMP_AFFINITY"};
  std::string threads = std::to_string(slot->cpus.threads);
  options.set_env = {{"OMP_NUM_THREADS", threads}, {"MKL_NUM_THREADS", threads}};
  auto spawned = Subprocess::Spawn(argv, options, &error);
  if (!spawned) {
    close(listen_fd);
    unlink(path.c_str());
    return fail(error);
  }
  *process = std::make_unique<Subprocess>(std::move(*spawned));
  SetStatus(slot, "STARTING", (*process)->pid());
  {
    std::lock_guard lock(mutex_);
    slot->started = std::chrono::system_clock::now();
  }
  auto deadline = Clock::now() + env_.worker_start_timeout;
  // Accept the worker's connection; it connects before loading the model.
  int conn = -1;
  while (conn < 0) {
    if (slot->stop) break;
    if (!(*process)->Running()) {
      error = "worker exited during start: " + DescribeWaitStatus(*(*process)->exit_status());
      break;
    }
    if (Clock::now() > deadline) {
      error = "worker did not connect within " + SecondsText(env_.worker_start_timeout);
      break;
    }
    pollfd p{listen_fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) conn = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  }
  close(listen_fd);
  unlink(path.c_str());
  if (conn < 0) {
    (*process)->Stop(std::chrono::seconds(2));
    return slot->stop ? false : fail(error);
  }
  // Wait for READY (or FATAL) while the model loads and warms up.
  std::string payload;
  while (true) {
    if (slot->stop) {
      close(conn);
      (*process)->Stop(std::chrono::seconds(2));
      return false;
    }
    if (Clock::now() > deadline) {
      error = "worker not ready within " + SecondsText(env_.worker_start_timeout);
      break;
    }
    // Wait in short steps (to notice stop), then read the whole frame with the start deadline:
    // a short ReadFrame timeout could end in the middle of a frame (the worker preempted
    // between its header and its payload on a loaded machine) and lose the framing.
    pollfd p{conn, POLLIN, 0};
    int readable = poll(&p, 1, 100);
    if (readable == 0 || (readable < 0 && errno == EINTR)) continue;
    auto r = ReadFrame(conn, &payload, deadline);
    if (r == ReadResult::kTimeout) {
      error = "worker not ready within " + SecondsText(env_.worker_start_timeout);
      break;
    }
    Message m;
    if (r == ReadResult::kOk && DecodeMessage(payload, &m, &error)) {
      if (m.type == MessageType::kReady) {
        auto info = nlohmann::json::parse(m.text, nullptr, false);
        std::lock_guard lock(mutex_);
        slot->status = "READY";
        slot->threads_reported = info.is_object() ? info.value("threads", 0) : 0;
        slot->last_error.clear();
        fatal_error_.clear();
        // Room in the socket for a whole batch sent inline (preprocessed samples without a
        // fixed size, large tensors), so a batch sent ahead is queued in one write instead of
        // a transfer paced by both sides. The kernel caps it at net.core.wmem_max.
        int sndbuf = 8 << 20;
        setsockopt(conn, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        *fd = conn;
        spdlog::info("model {}: worker {} (pid {}) ready on cpus [{}], {} threads", model_.name,
                     slot->id, (*process)->pid(), FormatCpuList(slot->cpus.cpus),
                     slot->threads_reported);
        return true;
      }
      if (m.type == MessageType::kFatal) {
        error = m.text;
        std::lock_guard lock(mutex_);
        fatal_error_ = m.text;
        break;
      }
      error = "unexpected message from worker";
      break;
    }
    auto status = (*process)->WaitFor(std::chrono::seconds(1));
    error = "worker exited during start" +
            (status ? ": " + DescribeWaitStatus(*status) : std::string());
    break;
  }
  close(conn);
  (*process)->Stop(std::chrono::seconds(2));
  spdlog::error("model {}: worker {} failed to start: {}", model_.name, slot->id, error);
  return fail(error);
}

void ModelPool::ReadReplies(Slot* slot, int fd, Subprocess& process) {
  std::string payload;
  int status = 0;  // the verdict for the running batch when the connection ends
  std::string body;
  auto timed_out = [&] {
    spdlog::warn("model {}: worker {} (pid {}) timed out; replacing it", model_.name, slot->id,
                 process.pid());
    process.Signal(SIGKILL);
    status = 504;
    body = ErrorBody(504, "RequestTimeout",
                     "model \"" + model_.name + "\" did not answer within " +
                         SecondsText(model_.response_timeout));
  };
  while (true) {
    auto deadline = Clock::time_point::max();
    {
      std::lock_guard lock(mutex_);
      if (!slot->in_flight.empty()) deadline = slot->in_flight.front().deadline;
    }
    // Wait in short steps (a batch sent meanwhile brings a deadline), then read the whole frame
    // with the deadline: a ReadFrame that timed out in the middle of a frame would lose the
    // framing.
    int wait_ms = 100;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      wait_ms = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 100));
    }
    pollfd p{fd, POLLIN, 0};
    int readable = poll(&p, 1, wait_ms);
    if (readable < 0 && errno == EINTR) continue;
    ReadResult r = ReadResult::kError;
    if (readable == 0) {
      if (Clock::now() < deadline) continue;
      r = ReadResult::kTimeout;
    } else if (readable > 0) {
      r = ReadFrame(fd, &payload, deadline);
    }
    if (r == ReadResult::kTimeout) {
      timed_out();
      break;
    }
    if (r != ReadResult::kOk) {  // the worker's end closed: it died, or the slot closed it
      bool running, closing;
      size_t held = 0;
      {
        std::lock_guard lock(mutex_);
        running = !slot->in_flight.empty();
        closing = slot->closing;
        for (const auto& batch : slot->in_flight) held += batch.jobs.size();
      }
      if (closing && !running) break;
      auto exit = process.WaitFor(std::chrono::milliseconds(500));
      std::string why = exit ? DescribeWaitStatus(*exit) : "connection lost";
      if (!running) {
        spdlog::error("model {}: idle worker {} (pid {}) died ({}); restarting it on the same CPUs",
                      model_.name, slot->id, process.pid(), why);
        break;
      }
      spdlog::error(
          "model {}: worker {} (pid {}) died ({}) holding {} request(s); failing the ones it "
          "ran, restarting it on the same CPUs",
          model_.name, slot->id, process.pid(), why, held);
      status = 503;
      body = ErrorBody(
          503, "ServiceUnavailableException",
          "worker of model \"" + model_.name + "\" died (" + why + ") while running this request");
      break;
    }
    Message reply;
    std::string error;
    InFlight done;
    bool ok = DecodeMessage(payload, &reply, &error) && reply.type == MessageType::kResults;
    {
      std::lock_guard lock(mutex_);
      if (ok && slot->in_flight.empty()) {
        ok = false;
        error = "a reply to no batch";
      }
      if (ok) {
        done = std::move(slot->in_flight.front());
        slot->in_flight.pop_front();
        if (!slot->in_flight.empty()) {  // the batch sent ahead runs now
          auto now = Clock::now();
          for (auto& job : slot->in_flight.front().jobs) job.dispatched = now;
          ahead_ -= slot->in_flight.front().jobs.size();
        }
      }
    }
    if (!ok) {
      spdlog::error("model {}: worker {} sent a bad reply: {}; replacing it", model_.name, slot->id,
                    error.empty() ? "not a result" : error);
      process.Signal(SIGKILL);
      status = 500;
      body = ErrorBody(500, "InternalServerError", "worker sent a bad reply");
      break;
    }
    if (metrics_.worker_forward) {
      auto seconds = [](uint64_t us) { return static_cast<double>(us) / 1e6; };
      metrics_.worker_preprocess->Observe(seconds(reply.timings.preprocess_us));
      metrics_.worker_forward->Observe(seconds(reply.timings.forward_us));
      metrics_.worker_postprocess->Observe(seconds(reply.timings.postprocess_us));
    }
    std::map<uint64_t, WireItem*> by_id;
    for (auto& item : reply.items) by_id[item.id] = &item;
    for (auto& job : done.jobs) {
      auto it = by_id.find(job.id);
      if (it == by_id.end()) {
        Finish(job, 500, ErrorBody(500, "InternalServerError", "worker returned no reply"));
      } else {
        Finish(job, it->second->status, std::move(it->second->body), &reply.timings);
      }
    }
    in_flight_ -= static_cast<int>(done.jobs.size());
    cv_.notify_all();  // room for the next batch; Stop's drain
  }
  {
    std::lock_guard lock(mutex_);
    slot->worker_gone = true;
    slot->end_status = status;
    slot->end_body = std::move(body);
  }
  cv_.notify_all();
}

std::string ModelPool::EncodeForWorker(Slot* slot, const InFlight& batch) {
  // The jobs stay in flight until answered; only the slot thread touches their bodies.
  std::vector<BatchItemView> items;
  std::vector<std::string> refs;
  size_t bytes = 0;
  bool shared = slot->batch_memory != nullptr;
  for (const auto& job : batch.jobs) {
    shared = shared && job.kind == static_cast<int>(InputKind::kPreprocessed);
    bytes += job.body.size();
  }
  if (shared && bytes <= slot->lane_bytes) {
    // At most two batches are in flight and they alternate lanes: this lane's previous batch
    // has been answered, so the worker is done reading it.
    size_t offset = (slot->shared_batches++ % 2) * slot->lane_bytes;
    refs.reserve(batch.jobs.size());
    for (const auto& job : batch.jobs) {
      std::memcpy(slot->batch_memory + offset, job.body.data(), job.body.size());
      refs.push_back(EncodeSharedRef(offset, job.body.size()));
      items.push_back({job.id, static_cast<int>(InputKind::kPreprocessedShared), refs.back()});
      offset += job.body.size();
    }
  } else {
    for (const auto& job : batch.jobs) items.push_back({job.id, job.kind, job.body});
  }
  return EncodeBatch(items);
}

void ModelPool::RunSlot(Slot* slot) {
  if (size_t lane = SharedLaneBytes(model_)) {
    int fd = memfd_create("sg-serve-batches", MFD_CLOEXEC);
    void* mapped = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, static_cast<off_t>(2 * lane)) == 0) {
      mapped = mmap(nullptr, 2 * lane, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    if (mapped != MAP_FAILED) {
      slot->batch_memory_fd = fd;
      slot->batch_memory = static_cast<char*>(mapped);
      slot->lane_bytes = lane;
    } else {
      spdlog::warn("model {}: no shared batch memory ({}); samples go through the socket",
                   model_.name, std::strerror(errno));
      if (fd >= 0) close(fd);
    }
  }
  auto backoff = std::chrono::milliseconds(100);
  bool first = true;
  while (!slot->stop) {
    std::unique_ptr<Subprocess> process;
    int fd = -1;
    if (!first) {
      std::lock_guard lock(mutex_);
      ++slot->restarts;
      if (metrics_.worker_restarts) metrics_.worker_restarts->Increment();
    }
    first = false;
    if (!StartWorker(slot, &process, &fd)) {
      // Back off (interruptibly) before the next try: a model that cannot load must not spin.
      auto until = Clock::now() + backoff;
      while (!slot->stop && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      continue;
    }
    backoff = std::chrono::milliseconds(100);
    std::thread reader([this, slot, fd, &process] { ReadReplies(slot, fd, *process); });
    while (InFlight* sent = TakeBatch(slot)) {
      if (metrics_.batch_size) metrics_.batch_size->Observe(static_cast<double>(sent->jobs.size()));
      // A write that fails means the worker is gone: the reader sees the end too.
      WriteFrame(fd, EncodeForWorker(slot, *sent));
    }
    {
      // Stopping with a live worker: it answers what it holds first.
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return slot->in_flight.empty() || slot->worker_gone; });
      slot->closing = true;
    }
    shutdown(fd, SHUT_RDWR);  // ends the reader; the worker sees EOF and exits
    reader.join();
    close(fd);
    // What the worker held when it went: the batch it ran gets the reader's verdict, the ones
    // sent ahead (never started) go back to the queue for the next worker. Without a verdict
    // nothing ran (a batch sent as the idle worker died): all of it goes back.
    std::deque<InFlight> left;
    int status;
    std::string body;
    {
      std::lock_guard lock(mutex_);
      left.swap(slot->in_flight);
      for (size_t i = 1; i < left.size(); ++i) ahead_ -= left[i].jobs.size();
      status = slot->end_status;
      body = std::move(slot->end_body);
      slot->closing = slot->worker_gone = false;
      slot->end_status = 0;
    }
    // Requeue puts a batch at the queue's front: the newest goes back first, so the queue
    // keeps its order.
    size_t first_requeued = status == 0 ? 0 : 1;
    for (size_t i = left.size(); i > first_requeued; --i) Requeue(left[i - 1].jobs);
    if (status != 0 && !left.empty()) {
      for (auto& job : left[0].jobs) Finish(job, status, body);
      in_flight_ -= static_cast<int>(left[0].jobs.size());
    }
    SetStatus(slot, slot->stop ? "STOPPED" : "RESTARTING", 0);
    process->Stop(std::chrono::seconds(5));
  }
  if (slot->batch_memory) munmap(slot->batch_memory, 2 * slot->lane_bytes);
  if (slot->batch_memory_fd >= 0) close(slot->batch_memory_fd);
}

int ModelPool::ready_workers() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(std::count_if(slots_.begin(), slots_.end(),
                                        [](const auto& s) { return s->status == "READY"; }));
}

int ModelPool::min_workers() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(slots_.size());
}

bool ModelPool::WaitReady(std::chrono::steady_clock::time_point deadline,
                          std::string* error) const {
  std::unique_lock lock(mutex_);
  while (true) {
    if (stopping_) {
      *error = "server is shutting down";
      return false;
    }
    bool all_ready = true;
    for (const auto& s : slots_) {
      if (s->status == "FAILED") {
        *error = s->last_error.empty() ? "a worker failed to start" : s->last_error;
        return false;
      }
      if (s->status != "READY") all_ready = false;
    }
    if (all_ready) return true;
    if (Clock::now() >= deadline) {
      *error = "workers not ready in time";
      return false;
    }
    // Woken by status changes; the short step also catches a failed start, which is written
    // without a notification.
    cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)));
  }
}

size_t ModelPool::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + ahead_;
}

std::string ModelPool::fatal_error() const {
  std::lock_guard lock(mutex_);
  return fatal_error_;
}

nlohmann::json ModelPool::Describe() const {
  std::lock_guard lock(mutex_);
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& s : slots_) {
    nlohmann::json w = {{"id", std::to_string(s->id)},
                        {"startTime", FormatUtc(std::chrono::system_clock::to_time_t(s->started),
                                                "%Y-%m-%dT%H:%M:%SZ")},
                        {"status", s->status},
                        {"pid", s->pid},
                        {"memoryUsage", s->pid > 0 ? ResidentBytes(s->pid) : 0},
                        {"gpu", false},
                        {"gpuUsage", "N/A"},
                        {"pinnedCpus", FormatCpuList(s->cpus.cpus)},
                        {"numaNode", s->cpus.numa_node},
                        {"threads", s->cpus.threads},
                        {"threadsReported", s->threads_reported},
                        {"restarts", s->restarts}};
    if (!s->last_error.empty()) w["lastError"] = s->last_error;
    workers.push_back(std::move(w));
  }
  return {{"modelName", model_.name},
          {"modelVersion", model_.version},
          {"modelUrl", model_.path},
          {"runtime", "libtorch"},
          {"handler", HandlerName(model_.handler)},
          {"minWorkers", slots_.size()},
          {"maxWorkers", slots_.size()},
          {"batchSize", model_.batch_size},
          {"maxBatchDelay", model_.max_batch_delay.count()},
          {"responseTimeout", model_.response_timeout.count() / 1000},
          {"loadedAtStartup", true},
          {"dispatchAhead", model_.dispatch_ahead},
          {"jobQueueStatus",
           {{"remainingCapacity",
             std::max<int64_t>(
                 0, model_.job_queue_size - static_cast<int64_t>(queue_.size() + ahead_))},
            {"pendingRequests", queue_.size() + ahead_}}},
          {"workers", std::move(workers)}};
}

}  // namespace sg::serve
