"""Simulated training episodes: scripted-expert rollouts saved in the real HDF5 episode format.

Run ``python -m train.generate --episodes 200 --out data/sim`` (``--help`` lists every option).
From code: ``generate_episodes(GenerateConfig(episodes=200, out="data/sim")) -> list[Path]``.

What one episode is
    The real protocol: 18 frames. Frame 0 is ``episode_start`` with a zero action; frames 1-17
    are the expert's 17 key presses. As the real collector grabs its image right after it
    publishes a key's command (before the 0.4 s of motion), frame ``k`` (k >= 1) holds the image
    taken *before* press ``k`` moves the base, with that press's action: obs_t with action_t.
    Frames 0 and 1 therefore show the same pose; here they are the same rendered frame (the
    simulator takes one exposure per pose). The image after the last press is not stored, as
    in the real files. Actions are ``[linear_x, linear_y, 0]`` float32 in data units (a key
    writes +-1.15); event types follow ``train.episodes.event_types_for_actions``
    (``stop_action`` for the expert's space bar). An episode that ends in a collision stops at
    the colliding press (fewer than 18 frames); it is kept only with ``keep_failures``.

Scenes
    Each episode is one scene of the registered envs (``mvla_sim.env_id(side, lighting)``) with
    domain randomization, at one obstacle distance. The ``mix`` weighs the four scenarios
    ``left``, ``left_evening``, ``right``, ``right_evening`` (named like the file-name suffixes).
    The default, ``balanced``, gives each a quarter: evening is the scarce real condition (12 of
    468 episodes), and simulated data is meant to fill that gap. ``real`` reproduces the real
    proportions (206 left, 12 left_evening, 250 right of 468). Distances share each scenario's
    weight equally. Scenes are assigned in a fixed interleaved order (episode ``i`` goes to the
    scenario furthest behind its target share), so every prefix of a run is balanced and the
    real "sorted file names" train/val split of a generated folder is balanced too.

The expert
    ``policies.scripted.expert.ScriptedExpert``: per episode it draws a guide among the real key sequences
    of its side (FACTS.md, in proportion to their real episode counts), presses it while it still
    ends in the goal zone with margin, and otherwise corrects with the teleoperators' own keys
    and pattern. Noise-free in a nominal scene it presses its guide exactly.

Noise (DART-style)
    With ``noise`` p, each key press but the last is, with probability p, replaced by a random
    key among the teleoperators' (W, Q, A, D, E: the keys of the real sequences); the expert
    then corrects from wherever that led. The file stores the *executed* action (what was
    "pressed", as teleoperation data records it), so the data holds the expert's recoveries.
    The expert's intended actions are kept in the ``sim_intended_actions`` attribute (T x 3) for
    anyone who prefers clean labels. An episode is named ``variant`` when at least one executed
    press differs from the intended one (a deviation from the guided sequence), else ``core``.

Key sequences
    ``generate_report.json`` (``totals.key_sequences``) and the command's output give the key
    sequences written per side beside the real table: how many episodes pressed each real
    sequence exactly, and how far the others (corrections, recoveries) are from the nearest one.

Determinism, workers, resuming
    Episode ``i`` draws everything from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``
    (env seed and expert seed), and its scenario and timestamp depend only on ``(seed, i)`` and the
    mix: the files are identical whatever ``workers`` is, and ``--episodes 200`` extends a run
    of 100 with the same first 100 episodes. Rerunning into the same ``out`` skips the episodes
    whose files exist; failed rollouts that were dropped are simulated again (and dropped again).
    A folder holds one configuration: a rerun whose settings differ (other than ``episodes`` and
    ``workers``) from ``out/generate_config.json`` is refused.

File names and attributes
    ``episode_{YYYYMMDD_HHMMSS}_1box_hori_{left|right}_{core|variant}_{distance}[_evening].h5``
    (the real pattern). The timestamps are synthetic: ``SYNTHETIC_EPOCH`` (1990-01-01) plus
    ``(seed % SEED_SLOTS) * SEED_SLOT_S + i * EPISODE_SPACING_S`` seconds, unique per episode,
    before any real recording (2025), so simulated files sort before real ones and never
    collide with them (seeds equal modulo ``SEED_SLOTS`` share timestamps: do not merge their
    folders). ``evening_suffix=False`` names evening episodes like day ones (the lighting then
    lives only in the attributes). Root attributes are the real nine (``time_period`` is
    ``"evening"`` or ``"day"`` from the lighting, ``collection_*`` from the synthetic timestamp)
    plus ``source="mvla_sim"`` and ``sim_*`` attributes: seeds, scene, success, collision,
    side passed, keys pressed and intended, the scene layout as JSON. ``read_episode`` returns them in
    ``Episode.attrs``. Every file also records its colour order (``channel_order``), which
    ``read_episode`` returns as ``Episode.channel_order``: ``bgr`` by default, like the team's
    collector, so generated episodes mixed into the fork's loader come in the real ones' order;
    ``--channel-order rgb`` stores the env's frames as they are.

File layout
    ``layout`` (``--layout``) picks which of the team's layouts is written (``train.episodes``):
    ``collector`` (default: the November 2025 collector's, read by the fork's
    ``MobileVLAH5Dataset``), ``v3`` (instruction in the ``task`` attribute) or ``v5``
    (``observations/images``, no event types: their current data). The content is the same;
    ``read_episode`` reads all three back into the same ``Episode``.

Outputs beside the episodes: ``generate_config.json`` (the resolved config) and
``generate_report.json`` (one record per episode index and the totals), both written atomically.

Rooms
    ``config`` (:class:`GenerateConfig`, the mix and size parsers), ``plan`` (scene, seeds and
    timestamp of every episode index), ``rollout`` (the expert driving one seeded, randomized
    scene, and its record), ``writer`` (a rollout as a real-format file with its ``sim_*``
    attributes; a written file's record back), ``key_report`` (the key sequences written beside
    the real ones), ``run`` (resuming, workers, the report) and ``cli`` (``python -m train.generate``).
"""

from train.generate.cli import build_parser, main
from train.generate.config import (
    MAX_EPISODES,
    MIX_PRESETS,
    REAL_EPISODE_COUNTS,
    SCENARIOS,
    GenerateConfig,
    GenerateConfigError,
    parse_distances,
    parse_image_size,
    parse_mix,
)
from train.generate.key_report import format_key_sequence_distribution, key_sequence_distribution
from train.generate.plan import (
    EpisodePlan,
    episode_seeds,
    episode_timestamp,
    plan_episodes,
    scenario_schedule,
)
from train.generate.rollout import Rollout, roll_out
from train.generate.run import (
    CONFIG_FILE,
    REPORT_FILE,
    GenerateResult,
    generate_episodes,
    run_generation,
    simulate_episode,
)
from train.generate.writer import SOURCE, write_generated_episode

__all__ = [
    "CONFIG_FILE",
    "MAX_EPISODES",
    "MIX_PRESETS",
    "REAL_EPISODE_COUNTS",
    "REPORT_FILE",
    "SCENARIOS",
    "SOURCE",
    "EpisodePlan",
    "GenerateConfig",
    "GenerateConfigError",
    "GenerateResult",
    "Rollout",
    "build_parser",
    "episode_seeds",
    "episode_timestamp",
    "format_key_sequence_distribution",
    "generate_episodes",
    "key_sequence_distribution",
    "main",
    "parse_distances",
    "parse_image_size",
    "parse_mix",
    "plan_episodes",
    "roll_out",
    "run_generation",
    "scenario_schedule",
    "simulate_episode",
    "write_generated_episode",
]
