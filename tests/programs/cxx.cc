// C++ on the guest: exceptions unwinding through many frames (the unwinder reads return addresses
// from the guest stack and .eh_frame, so a translator must keep guest return addresses there),
// destructors run during unwinding, rethrow, RTTI and dynamic_cast, virtual calls, static
// constructors, std::sort/map/string/function and iostream formatting.
//! variants: gcc-static gcc-static-pie gcc-dynamic gcc-bridged
#include <algorithm>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

static int live_guards = 0;
static int destroyed_guards = 0;
struct Guard {
    int id;
    explicit Guard(int i) : id(i) { live_guards++; }
    ~Guard() { live_guards--; destroyed_guards++; }
};

struct Registry {
    std::vector<std::string> names;
    Registry() { names.push_back("constructed before main"); }
};
static Registry registry;

struct MyError : std::runtime_error {
    int depth;
    MyError(const std::string &m, int d) : std::runtime_error(m), depth(d) {}
};

__attribute__((noinline)) static int dive(int depth, int limit) {
    Guard g(depth);
    if (depth == limit) throw MyError("bottom reached", depth);
    return dive(depth + 1, limit) + 1;
}

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const = 0;
};
struct Rect : Shape {
    double w, h;
    Rect(double a, double b) : w(a), h(b) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};
struct Square : Rect {
    explicit Square(double s) : Rect(s, s) {}
    std::string name() const override { return "square"; }
};
struct Circle : Shape {
    double r;
    explicit Circle(double x) : r(x) {}
    double area() const override { return 3.141592653589793 * r * r; }
    std::string name() const override { return "circle"; }
};

int main() {
    std::cout << registry.names[0] << "\n";
    for (int limit : {0, 5, 50, 500}) {
        try {
            dive(0, limit);
            std::cout << "no throw?\n";
        } catch (const MyError &e) {
            std::cout << "caught '" << e.what() << "' at depth " << e.depth << ", live guards " << live_guards
                      << ", destroyed " << destroyed_guards << "\n";
        }
    }
    try {
        try {
            throw std::out_of_range("inner");
        } catch (const std::exception &e) {
            std::cout << "inner handler saw " << e.what() << ", rethrowing\n";
            throw;
        }
    } catch (const std::out_of_range &e) {
        std::cout << "outer caught out_of_range: " << e.what() << "\n";
    }
    try {
        std::vector<int> v(3);
        (void)v.at(10);
    } catch (const std::out_of_range &) {
        std::cout << "vector::at threw out_of_range\n";
    }
    try {
        throw 42;
    } catch (int x) {
        std::cout << "caught int " << x << "\n";
    }

    std::vector<std::unique_ptr<Shape>> shapes;
    shapes.push_back(std::make_unique<Rect>(2, 3));
    shapes.push_back(std::make_unique<Circle>(1.5));
    shapes.push_back(std::make_unique<Square>(4));
    std::sort(shapes.begin(), shapes.end(), [](const auto &a, const auto &b) { return a->area() < b->area(); });
    for (const auto &s : shapes) {
        const Rect *r = dynamic_cast<const Rect *>(s.get());
        std::cout << std::fixed << std::setprecision(4) << s->name() << " area " << s->area()
                  << (r ? " (is a rect)" : " (not a rect)") << " typeid-ok " << (typeid(*s) == typeid(Square)) << "\n";
    }

    std::vector<std::string> words = {"pear", "apple", "fig", "banana", "kiwi", "cherry", "date", "apple"};
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    std::map<char, int> first_letters;
    for (const auto &w : words) first_letters[w[0]]++;
    std::ostringstream os;
    for (const auto &w : words) os << w << ' ';
    std::cout << os.str() << "\n";
    for (const auto &[c, n] : first_letters) std::cout << c << '=' << n << ' ';
    std::cout << "\n";

    std::function<uint64_t(uint64_t)> fact = [&](uint64_t n) { return n <= 1 ? 1 : n * fact(n - 1); };
    std::cout << "20! = " << fact(20) << "\n";
    std::cout << std::scientific << std::setprecision(6) << 6.02214076e23 << " " << std::hex << 48879 << std::dec << " "
              << std::to_string(2.5) << "\n";
    return 0;
}
