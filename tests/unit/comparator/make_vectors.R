# Known-answer vectors for comparator/rank_tests.h, computed with R's own functions.
# Run from the repository root:
#   Rscript tests/unit/comparator/make_vectors.R > tests/unit/comparator/rank_test_vectors.txt
# Output: one record per line, fields separated by "|":
#   mw|name|conf|x,...|y,...|W|p|estimate|ci_low|ci_high|exact(0/1)
#   sr|name|conf|x,...|y,...|V|p|estimate|ci_low|ci_high|exact(0/1)
#   wilson|successes|trials|conf|lower|upper
#   pwilcox|q|m|n|p      qwilcox|p|m|n|q      psignrank|q|n|p      qsignrank|p|n|q
#   qnorm|p|z
options(warn = -1)
f <- function(v) sprintf("%.17g", v)
vec <- function(v) paste(f(v), collapse = ",")
emit <- function(kind, name, conf, x, y, paired) {
  r <- wilcox.test(x, y, paired = paired, conf.int = TRUE, conf.level = conf)
  exact <- as.integer(grepl("exact", r$method))
  cat(paste(kind, name, f(conf), vec(x), vec(y), f(r$statistic), f(r$p.value),
            f(r$estimate), f(r$conf.int[1]), f(r$conf.int[2]), exact, sep = "|"), "\n", sep = "")
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
