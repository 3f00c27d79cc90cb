#include "common/subprocess.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace sg {
namespace {

// Everything the child needs, prepared before fork: between fork and exec a multi-threaded
// parent's child may only make async-signal-safe calls (no allocation).
struct PreparedExec {
  std::vector<std::string> argv_storage;
  std::vector<char*> argv;
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  cpu_set_t cpus;
  bool set_cpus = false;
};

std::vector<std::string> BuildEnvironment(const SpawnOptions& options) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    bool drop = false;
    for (const auto& u : options.unset_env) drop = drop || u == name;
    for (const auto& [k, v] : options.set_env) drop = drop || k == name;
    if (!drop) env.push_back(std::move(entry));
  }
  for (const auto& [k, v] : options.set_env) env.push_back(k + "=" + v);
  return env;
}

[[noreturn]] void ChildFail(int pipe_fd, int err) {
  (void)!write(pipe_fd, &err, sizeof err);
  _exit(127);
}

}  // namespace

std::optional<Subprocess> Subprocess::Spawn(const std::vector<std::string>& argv,
                                            const SpawnOptions& options, std::string* error) {
  if (argv.empty()) {
    if (error) *error = "empty command line";
    return std::nullopt;
  }
  PreparedExec prep;
  prep.argv_storage = argv;
  for (auto& a : prep.argv_storage) prep.argv.push_back(a.data());
  prep.argv.push_back(nullptr);
  prep.env_storage = BuildEnvironment(options);
  for (auto& e : prep.env_storage) prep.envp.push_back(e.data());
  prep.envp.push_back(nullptr);
  CPU_ZERO(&prep.cpus);
  for (int cpu : options.cpu_affinity) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
      if (error) *error = "cpu " + std::to_string(cpu) + " out of range";
      return std::nullopt;
    }
    CPU_SET(cpu, &prep.cpus);
    prep.set_cpus = true;
  }

  // A close-on-exec pipe tells the parent whether exec succeeded: EOF means it did.
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    if (error) *error = std::string("pipe2: ") + std::strerror(errno);
    return std::nullopt;
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    if (error) *error = std::string("fork: ") + std::strerror(errno);
    close(status_pipe[0]);
    close(status_pipe[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    close(status_pipe[0]);
    if (options.die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    }
    setpgid(0, 0);  // own process group: terminal signals to the parent don't double up
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (prep.set_cpus && sched_setaffinity(0, sizeof prep.cpus, &prep.cpus) != 0) {
      ChildFail(status_pipe[1], errno);
    }
    auto redirect = [&](const std::string& path, int target) {
      if (path.empty()) return;
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || dup2(fd, target) < 0) ChildFail(status_pipe[1], errno);
    };
    redirect(options.stdout_path, STDOUT_FILENO);
    redirect(options.stderr_path, STDERR_FILENO);
    for (int fd : options.keep_fds) {
      if (fcntl(fd, F_SETFD, 0) != 0) ChildFail(status_pipe[1], errno);
    }
    if (!options.working_dir.empty() && chdir(options.working_dir.c_str()) != 0) {
      ChildFail(status_pipe[1], errno);
    }
    execvpe(prep.argv[0], prep.argv.data(), prep.envp.data());
    ChildFail(status_pipe[1], errno);
  }
  close(status_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(status_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(status_pipe[0]);
  if (n == sizeof child_errno) {
    waitpid(pid, nullptr, 0);
    if (error) *error = "cannot start " + argv[0] + ": " + std::strerror(child_errno);
    return std::nullopt;
  }
  return Subprocess(pid);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) Stop();
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !status_) Stop();
}

bool Subprocess::TryReap() {
  if (status_) return true;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    status_ = 0;  // reaped elsewhere; nothing more to learn
    return true;
  }
  return false;
}

bool Subprocess::Running() {
  return pid_ > 0 && !TryReap();
}

void Subprocess::Signal(int signal) {
  if (Running()) kill(pid_, signal);
}

std::optional<int> Subprocess::WaitFor(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!TryReap()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

int Subprocess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return 0;
  Signal(SIGTERM);
  if (!WaitFor(grace)) {
    Signal(SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
  }
  return *status_;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "wait status " + std::to_string(status);
}

}  // namespace sg
