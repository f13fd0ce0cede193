"""Count the results of a subunit v2 stream and print one summary line.

stestr's own summary is not a line CI reads, so this prints
"N passed, N failed, N skipped" and exits 1 when anything failed or
nothing ran.
"""

import sys

import subunit
import testtools


def count(path: str) -> tuple[int, int, int]:
    tally = {'success': 0, 'fail': 0, 'skip': 0}

    def on_status(test_id=None, test_status=None, **kwargs):
        if test_status in ('success', 'xfail'):
            tally['success'] += 1
        elif test_status in ('fail', 'uxsuccess'):
            tally['fail'] += 1
        elif test_status == 'skip':
            tally['skip'] += 1

    with open(path, 'rb') as stream:
        # Anything that is not subunit (a discovery error printed by the
        # test runner) is passed on as an attachment, not a crash.
        case = subunit.ByteStreamToStreamResult(stream,
                                                non_subunit_name='stdout')
        result = testtools.StreamToDict(lambda test: on_status(
            test_id=test['id'], test_status=test['status']))
        result.startTestRun()
        try:
            case.run(result)
        finally:
            result.stopTestRun()
    return tally['success'], tally['fail'], tally['skip']


def main() -> int:
    try:
        passed, failed, skipped = count(sys.argv[1])
    except (OSError, ValueError) as exc:
        print('cannot read the test results: %s' % exc, file=sys.stderr)
        passed, failed, skipped = 0, 1, 0
    print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 1 if failed or not passed else 0


if __name__ == '__main__':
    sys.exit(main())
