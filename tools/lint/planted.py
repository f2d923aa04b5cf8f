"""The planted-fault self-test the offline checkers share: each fault is planted into a copy of
a set the checker accepts, and must be reported.

    import planted  # beside the checker
    return planted.self_test(base, faults, findings)
"""

import copy


def self_test(base, faults, findings):
    """`faults` maps a name to a function that changes a deep copy of `base` in place;
    `findings(x)` is the checker's list of findings for `x`. Prints one line per failure, or
    the count; returns the exit code (1 if the base itself is refused, a plant changed nothing,
    or a planted fault went unreported)."""
    clean = findings(base)
    failed = [f"the files themselves are refused: {clean}"] if clean else []
    for what, change in faults.items():
        planted = copy.deepcopy(base)
        change(planted)
        if planted == base:
            failed.append(f"planting did not change anything: {what}")
        elif not findings(planted):
            failed.append(f"planted fault not reported: {what}")
    for f in failed:
        print(f"error: {f}")
    if not failed:
        print(f"self-test: {len(faults)} planted faults, each reported")
    return 1 if failed else 0
