# Known-answer vectors for comparator/rank_tests.h, computed with R's own functions.
# Run from the repository root:
#   Rscript tests/unit/comparator/make_vectors.R > tests/unit/comparator/rank_test_vectors.txt
# Output: one record per line, fields separated by "|":
#   mw|name|conf|x,...|y,...|W|p|estimate|ci_low|ci_high|exact(0/1)|conf_level
#   sr|name|conf|x,...|y,...|V|p|estimate|ci_low|ci_high|exact(0/1)|conf_level
# where every value is R 4.2's wilcox.test(x, y, paired = (kind == "sr"), conf.int = TRUE,
# conf.level = conf) (correct = TRUE, exact = NULL, alternative = "two.sided"): $statistic,
# $p.value, $estimate, $conf.int and attr($conf.int, "conf.level"), printed with %.17g.
#   wilson|successes|trials|conf|lower|upper
#   pwilcox|q|m|n|p      qwilcox|p|m|n|q      psignrank|q|n|p      qsignrank|p|n|q
#   qnorm|p|z            pnorm_upper|x|p (pnorm(x, lower.tail = FALSE))
# The first block uses millisecond data with decimals (what sg-compare passed before issue 14);
# the second integer microseconds, what it passes now.
options(warn = -1)
f <- function(v) sprintf("%.17g", v)
vec <- function(v) paste(f(v), collapse = ",")
# `expect_exact`, when given, asserts which method R chose, so a case stays what its name says.
emit <- function(kind, name, conf, x, y, paired, expect_exact = NA) {
  r <- wilcox.test(x, y, paired = paired, conf.int = TRUE, conf.level = conf)
  exact <- as.integer(grepl("exact", r$method))
  if (!is.na(expect_exact) && exact != expect_exact) stop(name, ": R chose ", r$method)
  cat(paste(kind, name, f(conf), vec(x), vec(y), f(r$statistic), f(r$p.value),
            f(r$estimate), f(r$conf.int[1]), f(r$conf.int[2]), exact,
            f(attr(r$conf.int, "conf.level")), sep = "|"), "\n", sep = "")
}
set.seed(20261128)
# Mann-Whitney, exact (fewer than 50 per side, no ties).
x <- round(rnorm(10, 12, 2), 6); y <- round(rnorm(12, 10, 2), 6)
emit("mw", "exact_10_12_98", 0.98, x, y, FALSE)
emit("mw", "exact_10_12_95", 0.95, x, y, FALSE)
x <- round(rexp(5, 1 / 8), 6); y <- round(rexp(31, 1 / 6), 6)
emit("mw", "exact_5_31", 0.98, x, y, FALSE)
x <- round(runif(3, 0, 1), 6); y <- round(runif(4, 0, 1), 6)
emit("mw", "exact_tiny_3_4", 0.9, x, y, FALSE)
# Mann-Whitney, normal approximation: latency-like data with ties, odd n*m.
x <- round(rlnorm(81, log(9), 0.3), 1); y <- round(rlnorm(91, log(7), 0.3), 1)
emit("mw", "approx_ties_81_91", 0.98, x, y, FALSE)
x <- round(rgamma(201, 9, 1), 6); y <- round(rgamma(151, 8, 1), 6)
emit("mw", "approx_201_151", 0.98, x, y, FALSE)
x <- round(rnorm(51, 5, 1), 6); y <- round(rnorm(49, 5, 1), 6)
emit("mw", "approx_51_49_null", 0.95, x, y, FALSE)
# Wilcoxon signed rank on paired differences x - y.
p <- round(rlnorm(20, log(5), 0.2), 6); s <- round(p * 1.1 + rnorm(20, 0, 0.3), 6)
emit("sr", "exact_20", 0.98, s, p, TRUE)
p <- round(rlnorm(9, log(5), 0.2), 6); s <- round(p + rnorm(9, 0, 0.5), 6)
emit("sr", "exact_9_95", 0.95, s, p, TRUE)
p <- round(rlnorm(101, log(5), 0.3), 1); s <- round(p + rnorm(101, 0.3, 0.5), 1)
emit("sr", "approx_ties_zeroes_101", 0.98, s, p, TRUE)
p <- round(rlnorm(150, log(8), 0.3), 6); s <- round(p * 1.05 + rnorm(150, 0, 0.4), 6)
emit("sr", "approx_150", 0.98, s, p, TRUE)
p <- round(rlnorm(60, log(8), 0.3), 6); s <- round(p + rnorm(60, 0, 0.4), 6)
emit("sr", "approx_60_null", 0.95, s, p, TRUE)
# Wilson score bounds (prop.test without continuity correction, one-sided).
for (case in list(c(95, 100, 0.95), c(2936, 2987, 0.95), c(999, 1000, 0.99), c(1, 10, 0.9),
                  c(0, 50, 0.95), c(50, 50, 0.95), c(7, 7000, 0.98))) {
  lo <- prop.test(case[1], case[2], correct = FALSE, alternative = "greater",
                  conf.level = case[3])$conf.int[1]
  hi <- prop.test(case[1], case[2], correct = FALSE, alternative = "less",
                  conf.level = case[3])$conf.int[2]
  cat(paste("wilson", case[1], case[2], f(case[3]), f(lo), f(hi), sep = "|"), "\n", sep = "")
}
for (case in list(c(10, 4, 5), c(3, 10, 12), c(60, 10, 12), c(100, 20, 20), c(0, 3, 4))) {
  cat(paste("pwilcox", case[1], case[2], case[3], f(pwilcox(case[1], case[2], case[3])),
            sep = "|"), "\n", sep = "")
}
for (case in list(c(0.01, 10, 12), c(0.025, 5, 31), c(0.5, 7, 7), c(0.99, 20, 20))) {
  cat(paste("qwilcox", f(case[1]), case[2], case[3], qwilcox(case[1], case[2], case[3]),
            sep = "|"), "\n", sep = "")
}
for (case in list(c(10, 9), c(50, 20), c(150, 20), c(0, 5))) {
  cat(paste("psignrank", case[1], case[2], f(psignrank(case[1], case[2])), sep = "|"), "\n",
      sep = "")
}
for (case in list(c(0.01, 20), c(0.025, 9), c(0.5, 30), c(0.99, 40))) {
  cat(paste("qsignrank", f(case[1]), case[2], qsignrank(case[1], case[2]), sep = "|"), "\n",
      sep = "")
}
for (p in c(0.001, 0.01, 0.025, 0.5, 0.9, 0.975, 0.99, 0.9999)) {
  cat(paste("qnorm", f(p), f(qnorm(p)), sep = "|"), "\n", sep = "")
}
for (x in c(0, 1, 1.96, 5, 8.3, 10, 20, 27.5, 30, 35, 37.5)) {
  cat(paste("pnorm_upper", f(x), f(pnorm(x, lower.tail = FALSE)), sep = "|"), "\n", sep = "")
}

# ---- Integer microseconds, as sg-compare passes latencies since issue 14. ----
set.seed(20270114)
us <- function(n, median_us, sdlog) round(rlnorm(n, log(median_us), sdlog))
# Signed rank, exact: fewer than 50 non-zero differences, no ties, no zeroes.
p <- us(12, 5000, 0.3); d <- sample(c(-400:-1, 1:900), 12)
emit("sr", "us_exact_12", 0.98, p + d, p, TRUE, 1)
p <- us(49, 5000, 0.3); d <- sample(c(-300:-1, 1:900), 49)
emit("sr", "us_exact_49", 0.98, p + d, p, TRUE, 1)
p <- us(49, 5000, 0.3); d <- sample(1:5000, 49)
emit("sr", "us_exact_49_all_positive", 0.98, p + d, p, TRUE, 1)
p <- us(5, 5000, 0.3); d <- sample(c(-50:-1, 1:300), 5)
emit("sr", "us_exact_5_level_not_achievable", 0.98, p + d, p, TRUE, 1)
# 30 pairs whose differences tie in whole microseconds (no zeroes): R warns "cannot compute exact
# p-value with ties" and uses the normal approximation. Differencing milliseconds broke these ties.
p <- us(30, 5000, 0.3); d <- sample(c(-3:-1, 1:12), 30, replace = TRUE)
emit("sr", "us_ties_30", 0.98, p + d, p, TRUE, 0)
# Zeroes among otherwise distinct differences: normal approximation.
p <- us(20, 5000, 0.3); d <- c(0, 0, sample(c(-40:-1, 1:200), 18))
emit("sr", "us_zeroes_20", 0.95, p + d, p, TRUE, 0)
# Around the n = 50 threshold: 50 distinct differences (approximation), 49 non-zero of 50 pairs
# (approximation because of the zero), 51 with ties.
p <- us(50, 5000, 0.3); d <- sample(c(-300:-1, 1:900), 50)
emit("sr", "us_approx_50", 0.98, p + d, p, TRUE, 0)
p <- us(50, 5000, 0.3); d <- c(0, sample(c(-300:-1, 1:900), 49))
emit("sr", "us_approx_49_and_a_zero", 0.98, p + d, p, TRUE, 0)
p <- us(51, 5000, 0.3); d <- sample(-60:200, 51, replace = TRUE)
emit("sr", "us_approx_51_ties", 0.95, p + d, p, TRUE, 0)
# Tiny tied samples: the interval's alpha is doubled until the statistic brackets it.
emit("sr", "us_tiny_ties_3", 0.95, c(5003, 5003, 5005), c(5000, 5000, 5000), TRUE, 0)
emit("sr", "us_tiny_ties_6", 0.95, c(4998, 6001, 7001, 5003, 4003, 5004),
     c(5000, 6000, 7000, 5000, 4000, 5000), TRUE, 0)
# Server-like latencies (3-9 ms) with repeats, ties and zeroes; large n, where uniroot's steps
# decide the estimate and interval.
p <- us(2000, 5000, 0.25); s <- round(p * 1.02 + rnorm(2000, 0, 150))
emit("sr", "us_2000_shift", 0.98, s, p, TRUE, 0)
p <- us(2000, 5000, 0.25); s <- round(p + rnorm(2000, 0, 300))
emit("sr", "us_2000_null", 0.95, s, p, TRUE, 0)
p <- us(2000, 5000, 0.25); s <- round(p * 0.97 + rnorm(2000, 0, 200))
emit("sr", "us_2000_faster", 0.98, s, p, TRUE, 0)
p <- us(10000, 5000, 0.25); s <- round(p * 1.004 + rnorm(10000, 0, 250))
emit("sr", "us_10000_reservoir", 0.98, s, p, TRUE, 0)
# Far tails: R prints p < 2.2e-16; $p.value holds the value.
p <- us(400, 5000, 0.3); s <- p + round(rnorm(400, 150, 300))
emit("sr", "us_p_tiny", 0.98, s, p, TRUE, 0)
p <- us(300, 5000, 0.3); s <- p + round(rnorm(300, 900, 400))
emit("sr", "us_p_1e-50", 0.98, s, p, TRUE, 0)
p <- us(2000, 5000, 0.3); s <- p + round(rnorm(2000, 405, 500))
emit("sr", "us_p_1e-200", 0.98, s, p, TRUE, 0)
p <- us(2000, 5000, 0.3); s <- p + sample(1:3000, 2000, replace = TRUE)
emit("sr", "us_p_underflows", 0.98, s, p, TRUE, 0)
# Rank sum, exact: fewer than 50 per side and no ties.
v <- sample(3000:9000, 35); x <- v[1:15]; y <- v[16:35]
emit("mw", "us_exact_15_20", 0.98, x, y, FALSE, 1)
v <- sample(3000:9000, 98); x <- v[1:49] + 400; y <- v[50:98]
emit("mw", "us_exact_49_49", 0.98, x, y, FALSE, 1)
v <- sort(sample(3000:9000, 98)); x <- v[50:98]; y <- v[1:49]
emit("mw", "us_exact_49_49_separated", 0.98, x, y, FALSE, 1)
v <- sample(3000:9000, 5); x <- v[1:2]; y <- v[3:5]
emit("mw", "us_exact_2_3_level_not_achievable", 0.95, x, y, FALSE, 1)
# Around the threshold without ties, and small samples with ties.
v <- sample(3000:9000, 99); x <- v[1:50] + 300; y <- v[51:99]
emit("mw", "us_approx_50_49", 0.98, x, y, FALSE, 0)
v <- sample(3000:9000, 99); x <- v[1:49]; y <- v[50:99]
emit("mw", "us_approx_49_50", 0.95, x, y, FALSE, 0)
x <- 10 * round(us(20, 500, 0.2)); y <- 10 * round(us(25, 520, 0.2))
emit("mw", "us_ties_20_25", 0.98, x, y, FALSE, 0)
emit("mw", "us_tiny_ties_3_2", 0.95, c(1000, 1000, 2000), c(3000, 4000), FALSE, 0)
# Large server-like samples with ties; far tails.
x <- us(2000, 5100, 0.25); y <- us(2000, 5000, 0.25)
emit("mw", "us_2000_2000", 0.98, x, y, FALSE, 0)
x <- us(1500, 5000, 0.25); y <- us(1800, 5000, 0.25)
emit("mw", "us_1500_1800_null", 0.95, x, y, FALSE, 0)
x <- us(2000, 5000, 0.3); y <- us(2000, 5000 * exp(0.2), 0.3)
emit("mw", "us_p_1e-80", 0.98, x, y, FALSE, 0)
x <- us(2000, 5000, 0.3); y <- us(2000, 5000 * exp(0.39), 0.3)
emit("mw", "us_p_1e-280", 0.98, x, y, FALSE, 0)
