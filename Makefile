# whybatch — the two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast bench bench-full clean java-check

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "whybatch needs Python 3.11+"'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,tracking,airflow]'
	# GrowthBook's stats engine, the tests' reference for experiment statistics: it pins
	# numpy<2 and pandas<2, which its statistics modules do not need
	$(PY) -m pip install --quiet --no-deps 'gbstats==0.8.0'
	# Airflow's Spark provider, for the DAGs' spark_submit execution: it requires pyspark-client,
	# whose Connect-only pyspark package (no jars) would be written over the project's pyspark
	$(PY) -m pip install --quiet --no-deps 'apache-airflow-providers-apache-spark==6.3.4'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

java-check:
	@command -v java >/dev/null 2>&1 || { echo "Java 17 or 21 is required by Spark. Install it, e.g. 'apt-get install openjdk-17-jre-headless' (Debian/Ubuntu) or 'brew install openjdk@17' (macOS)."; exit 1; }

demo: install java-check
	$(VENV)/bin/whybatch demo

test: install java-check
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/plan_scaling.py
	$(PY) bench/vs_scan.py --rows 10000000 --modes fast
	$(PY) bench/vs_dowhy.py --rows 1000000

bench-full: bench
	$(PY) bench/scale.py --sizes 10000000 100000000
	$(PY) bench/coverage.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis spark-warehouse metastore_db derby.log mlruns
