// ModelPool against a scripted fake worker (Python, the real framing over the real Unix socket):
// how the front reads a worker's frames and where it puts the worker's stage times.
#include <sys/stat.h>

#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "common/metrics.h"
#include "model_server/model_pool.h"
#include "tests/support/test_support.h"

namespace sg::serve {
namespace {

using sg::testing::TempDir;

// Started as `fake-worker worker --socket PATH ...`: connects, sends READY as a header and, 300
// ms later, the payload (as a preempted worker would), then answers every batch with
// {"echo": <body>} and fixed stage times (111, 2222, 33 us).
constexpr const char* kFakeWorker = R"(#!/usr/bin/python3
import json, os, socket, struct, sys, time
path = sys.argv[sys.argv.index("--socket") + 1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
ready = b"\x01" + json.dumps({"pid": os.getpid(), "threads": 1}).encode()
s.sendall(struct.pack("<I", len(ready)))
time.sleep(0.3)
s.sendall(ready)
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data
while True:
    (size,) = struct.unpack("<I", read(4))
    payload = read(size)
    assert payload[0] == 3
    (n,) = struct.unpack_from("<I", payload, 1)
    at, out = 5, b""
    for _ in range(n):
        item_id, kind, length = struct.unpack_from("<QHI", payload, at)
        at += 14
        body = json.dumps({"echo": payload[at:at + length].decode()}).encode()
        at += length
        out += struct.pack("<QHI", item_id, 200, len(body)) + body
    reply = b"\x04" + struct.pack("<I", n) + out + struct.pack("<QQQ", 111, 2222, 33)
    s.sendall(struct.pack("<I", len(reply)) + reply)
)";

TEST(ModelPoolTest, SplitReadyFrameStartsTheWorkerOnceAndStageTimesReachTheCaller) {
  TempDir dir;
  auto worker = dir.Write("fake-worker", kFakeWorker);
  ASSERT_EQ(chmod(worker.c_str(), 0755), 0);
  MetricsRegistry registry;
  auto stage = [&](const std::string& name) {
    return &registry.AddHistogram(name, "h", LatencyBucketsSeconds(), {"model_name"})
                .WithLabels({"m"});
  };
  PoolMetrics metrics;
  metrics.worker_preprocess = stage("pre_seconds");
  metrics.worker_forward = stage("fwd_seconds");
  metrics.worker_postprocess = stage("post_seconds");
  auto& restarts = registry.AddCounter("restarts_total", "r", {"model_name"}).WithLabels({"m"});
  metrics.worker_restarts = &restarts;
  ModelConfig model;
  model.name = "m";
  PoolEnvironment env;
  env.self_exe = worker.string();
  env.socket_dir = dir.path().string();
  env.worker_start_timeout = std::chrono::seconds(20);
  // Declared before the pool, which may still call back while it stops.
  std::promise<std::pair<int, std::string>> reply;
  RequestTimings timings;
  ModelPool pool(model, env, metrics);
  pool.SetWorkers({WorkerCpus{{}, 1, -1}});

  auto submitted = pool.Submit("hello", [&](int status, std::string body, const RequestTimings& t) {
    timings = t;
    reply.set_value({status, std::move(body)});
  });
  ASSERT_EQ(submitted, ModelPool::SubmitResult::kQueued);
  auto answer = reply.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto [status, body] = answer.get();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body, R"({"echo": "hello"})");
  // READY split in two did not count as a failed start.
  EXPECT_EQ(restarts.Value(), 0);
  EXPECT_EQ(pool.Describe()["workers"][0]["restarts"], 0);
  // The worker's stage times reach the caller and the histograms as sent.
  EXPECT_TRUE(timings.has_worker);
  EXPECT_EQ(timings.preprocess.count(), 111);
  EXPECT_EQ(timings.forward.count(), 2222);
  EXPECT_EQ(timings.postprocess.count(), 33);
  EXPECT_GE(timings.total, timings.queue);
  EXPECT_DOUBLE_EQ(metrics.worker_forward->Take().sum, 0.002222);
  EXPECT_EQ(metrics.worker_preprocess->Take().count, 1u);
  pool.Stop(std::chrono::seconds(2));
}

}  // namespace
}  // namespace sg::serve
