"""The suite: what to run, read and checked before anything runs (the first stage of the data flow).

One job: turn a suite file (or a bundled suite's name) and its `--set` overrides into a valid `Suite`,
or into one `SuiteInvalid` listing every problem. Modules:

- schema.py: the `Suite` model, `load_suite`, `suite_config_hash`, the settings every arm shares;
- safe_yaml.py: the safe YAML reader (size, nesting, aliases, duplicate keys, tags, UTF-8);
- rules.py: the cross-field rules the schema alone cannot say;
- problems.py: `Problem` and `SuiteInvalid`, one line per problem;
- arms.py: the arm registry (what each arm is, which tasks it runs): the suite names arms, the workloads
  implement them, and both read this module.

May import: the shared vocabulary only (errors, flags, names, records, file_kinds). Never the workloads,
energy, runner or anything downstream: every later stage reads the suite, so it sits at the bottom of the
pipeline. The check of a suite against this machine (assets, sensors, GPUs) needs the workloads and the
meters, so it is the runner's (runner/preflight.py: `check_suite_before_work`).
"""

from eitp_bench.suite.problems import Problem, SuiteInvalid
from eitp_bench.suite.schema import (
    DataConfig,
    LauncherConfig,
    Suite,
    bundled_suites,
    effective_settings,
    load_suite,
    suite_config_hash,
    suite_file_name,
    unequal_settings,
)

__all__ = ["DataConfig", "LauncherConfig", "Problem", "Suite", "SuiteInvalid", "bundled_suites", "effective_settings",
           "load_suite", "suite_config_hash", "suite_file_name", "unequal_settings"]
