#include "common/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace sg {
namespace {

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(SubprocessTest, RunsAndReportsExitCode) {
  std::string error;
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "exit 3"}, {}, &error);
  ASSERT_TRUE(p) << error;
  auto status = p->WaitFor(std::chrono::seconds(5));
  ASSERT_TRUE(status);
  EXPECT_EQ(DescribeWaitStatus(*status), "exited with code 3");
}

TEST(SubprocessTest, ExecFailureIsReportedNotSilent) {
  std::string error;
  auto p = Subprocess::Spawn({"/nonexistent/program"}, {}, &error);
  EXPECT_FALSE(p);
  EXPECT_EQ(error, "cannot start /nonexistent/program: No such file or directory");
}

TEST(SubprocessTest, EnvironmentChangesAndAffinityApply) {
  testing::TempDir dir;
  setenv("SG_TEST_DROP_ME", "1", 1);
  SpawnOptions options;
  options.set_env = {{"SG_TEST_VALUE", "hello"}};
  options.unset_env = {"SG_TEST_DROP_ME"};
  options.cpu_affinity = {0};
  options.stdout_path = (dir.path() / "out.txt").string();
  std::string error;
  auto p = Subprocess::Spawn(
      {"/bin/sh", "-c",
       "echo \"v=$SG_TEST_VALUE d=${SG_TEST_DROP_ME:-unset}\"; grep Cpus_allowed_list "
       "/proc/self/status"},
      options, &error);
  ASSERT_TRUE(p) << error;
  ASSERT_TRUE(p->WaitFor(std::chrono::seconds(5)));
  std::string out = ReadAll(options.stdout_path);
  EXPECT_NE(out.find("v=hello d=unset"), std::string::npos) << out;
  EXPECT_NE(out.find("Cpus_allowed_list:\t0\n"), std::string::npos) << out;
  unsetenv("SG_TEST_DROP_ME");
}

// keep_fds: the child inherits those descriptors under the same numbers, and only those (the
// project opens everything close-on-exec).
TEST(SubprocessTest, KeptDescriptorsReachTheChildOthersDoNot) {
  int kept[2], other[2];
  ASSERT_EQ(pipe2(kept, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(other, O_CLOEXEC), 0);
  SpawnOptions options;
  options.keep_fds = {kept[1]};
  std::string script = "echo kept >&" + std::to_string(kept[1]) + " && echo other >&" +
                       std::to_string(other[1]) + " 2>/dev/null";
  std::string error;
  auto p = Subprocess::Spawn({"/bin/sh", "-c", script}, options, &error);
  ASSERT_TRUE(p) << error;
  auto status = p->WaitFor(std::chrono::seconds(5));
  close(kept[1]);
  close(other[1]);
  ASSERT_TRUE(status);
  EXPECT_NE(DescribeWaitStatus(*status), "exited with code 0") << "the other pipe was inherited";
  char buffer[16] = {};
  EXPECT_EQ(read(kept[0], buffer, sizeof buffer), 5);
  EXPECT_STREQ(buffer, "kept\n");
  EXPECT_EQ(read(other[0], buffer, sizeof buffer), 0);
  // Still close-on-exec in the parent.
  EXPECT_EQ(fcntl(kept[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  close(kept[0]);
  close(other[0]);
}

TEST(SubprocessTest, StopEscalatesToSigkill) {
  std::string error;
  // Ignores SIGTERM (and says so once the trap is set), so Stop must escalate after the grace
  // period.
  testing::TempDir dir;
  SpawnOptions options;
  options.stdout_path = (dir.path() / "out").string();
  auto p = Subprocess::Spawn(
      {"/bin/sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done"}, options,
      &error);
  ASSERT_TRUE(p) << error;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (testing::ReadFile(dir.path() / "out").find("trapped") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the shell never set its trap";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int status = p->Stop(std::chrono::milliseconds(200));
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_FALSE(p->Running());
}

TEST(SubprocessTest, DestructorReapsChild) {
  pid_t pid;
  {
    std::string error;
    auto p = Subprocess::Spawn({"/bin/sleep", "30"}, {}, &error);
    ASSERT_TRUE(p) << error;
    pid = p->pid();
    EXPECT_TRUE(p->Running());
  }
  // Reaped: the pid is no longer our child.
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(TestSupportTest, RealNginxChildIsReadyServesHttpAndIsStopped) {
  testing::TempDir dir;
  int port = testing::FreePort();
  ASSERT_GT(port, 0);
  EXPECT_FALSE(testing::WaitForPort(port, std::chrono::milliseconds(50)));
  std::string tmp = dir.path().string();
  auto conf = dir.Write("nginx.conf", "daemon off; master_process off; pid " + tmp +
                                          "/nginx.pid;\n"
                                          "error_log stderr warn; events {}\n"
                                          "http { access_log off; client_body_temp_path " +
                                          tmp +
                                          ";\n"
                                          "  proxy_temp_path " +
                                          tmp + "; fastcgi_temp_path " + tmp +
                                          ";\n"
                                          "  uwsgi_temp_path " +
                                          tmp + "; scgi_temp_path " + tmp +
                                          ";\n"
                                          "  server { listen 127.0.0.1:" +
                                          std::to_string(port) +
                                          ";\n"
                                          "    location / { return 200 \"hello\\n\"; } } }\n");
  testing::ChildProcess nginx("/usr/sbin/nginx", {"-p", tmp, "-c", conf.string(), "-e", "stderr"});
  std::string why;
  ASSERT_TRUE(nginx.WaitReady(port, "/", std::chrono::seconds(10), &why)) << why;
  auto response = testing::HttpGet(port, "/anything");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello\n");
  pid_t pid = nginx.pid();
  nginx.Stop();
  EXPECT_NE(kill(pid, 0), 0);  // gone and reaped
  EXPECT_FALSE(testing::WaitForPort(port, std::chrono::milliseconds(50)));
}

}  // namespace
}  // namespace sg
