// A std::thread pool (std::mutex + std::condition_variable task queue, std::atomic counters):
// 4 workers run 256 tasks of a parallel reduction over 2^24 elements, each task returning its
// partial result through a std::future; the total, a std::atomic sum and the per-worker task
// counts (which add up) must be exact whatever the schedule.
//! variants: gcc-static gcc-static-pie
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

class Pool {
  public:
    static const int kWorkers = 4;
    Pool() {
        for (int i = 0; i < kWorkers; i++) workers_.emplace_back([this, i] { run(i); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> g(m_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }
    template <class F> auto submit(F f) -> std::future<decltype(f())> {
        auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
        auto fut = task->get_future();
        {
            std::lock_guard<std::mutex> g(m_);
            q_.emplace_back([task] { (*task)(); });
        }
        cv_.notify_one();
        return fut;
    }
    // Tasks finished by each worker (they add up to the number submitted).
    std::atomic<uint64_t> done_per_worker[kWorkers] = {};

  private:
    void run(int id) {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock<std::mutex> l(m_);
                cv_.wait(l, [this] { return quit_ || !q_.empty(); });
                if (q_.empty()) return;
                job = std::move(q_.front());
                q_.pop_front();
            }
            job();
            done_per_worker[id]++;
        }
    }
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> q_;
    bool quit_ = false;
    std::vector<std::thread> workers_;
};

static uint64_t f(uint64_t i) { return (i * i) ^ (i >> 3); }

int main() {
    const uint64_t n = 1 << 24, tasks = 256, chunk = n / tasks;
    std::atomic<uint64_t> atomic_sum{0};
    uint64_t total = 0, tasks_done = 0;
    {
        Pool pool;
        std::vector<std::future<uint64_t>> parts;
        for (uint64_t t = 0; t < tasks; t++)
            parts.push_back(pool.submit([t, chunk, &atomic_sum] {
                uint64_t s = 0;
                for (uint64_t i = t * chunk; i < (t + 1) * chunk; i++) s += f(i);
                atomic_sum.fetch_add(s, std::memory_order_relaxed);
                return s;
            }));
        for (auto &p : parts) total += p.get();
        // Every future is ready; a worker counts its task just after running it.
        while (true) {
            uint64_t c = 0;
            for (auto &x : pool.done_per_worker) c += x.load();
            if (c == tasks) break;
            std::this_thread::yield();
        }
        for (auto &x : pool.done_per_worker) tasks_done += x.load();
    }
    uint64_t serial = 0;
    for (uint64_t i = 0; i < n; i++) serial += f(i);
    std::printf("tasks %llu, total %llu, atomic %llu, serial %llu: %s\n", (unsigned long long)tasks_done,
                (unsigned long long)total, (unsigned long long)atomic_sum.load(), (unsigned long long)serial,
                total == serial && atomic_sum.load() == serial ? "equal" : "DIFFERENT");
    return total != serial;
}
