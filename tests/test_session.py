"""edvr.session: thread pools from the config's threads section and the tools' flags."""

import argparse

import pytest

from edvr import session
from edvr.config import parse_config


def test_defaults_use_every_available_cpu_for_both_pools():
    cpus = session.available_cpus()
    assert session.thread_counts(None) == (cpus, cpus)
    assert session.thread_counts(parse_config({})['threads']) == (cpus, cpus)


def test_config_section_and_flags_set_the_pools():
    threads = parse_config({'threads': {'intra_op': 3}})['threads']
    assert session.thread_counts(threads) == (3, session.available_cpus())
    parser = argparse.ArgumentParser()
    session.add_thread_flags(parser)
    args = parser.parse_args(['--inter_op_threads', '5'])
    assert session.thread_counts(session.threads_from_flags(args, threads)) == (3, 5)
    config = session.session_config(session.threads_from_flags(args, threads))
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (3, 5)


def test_negative_counts_are_errors_naming_the_key():
    with pytest.raises(ValueError, match=r'threads.inter_op must be >= 0 \(0: automatic\), got -1'):
        session.thread_counts({'inter_op': -1})


def test_unknown_threads_key_is_a_config_error():
    with pytest.raises(ValueError, match=r"unknown key in section 'threads': 'intra'"):
        parse_config({'threads': {'intra': 2}})
