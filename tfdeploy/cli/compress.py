"""``tfdeploy compress``: recipes on one model (or, with ``--auto``, the accuracy-aware search)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tfdeploy.cli import options as opt
from tfdeploy.cli.context import echo_report, global_options, library_command, progress
from tfdeploy.cli.options import Loading, config_option, fields_for
from tfdeploy.compression import AutoConfig, CompressConfig


@click.command("compress")
@click.argument("model", type=click.Path(path_type=Path))
@opt.out_dir()
@opt.recipes(CompressConfig)
@opt.data(CompressConfig, help="Fine-tune/calibration/evaluation data: .npz (x, y, x_val, y_val) or an image "
          "directory.")
@config_option(CompressConfig, "epochs", "--epochs", type=click.IntRange(min=1), help="Fine-tune epochs.")
@config_option(CompressConfig, "batch_size", "--batch-size", type=click.IntRange(min=1))
@config_option(CompressConfig, "learning_rate", "--learning-rate", type=click.FloatRange(min=0, min_open=True))
@config_option(CompressConfig, "target_sparsity", "--target-sparsity",
               type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Final sparsity of prune.")
@config_option(CompressConfig, "prune_structure", "--prune-structure", type=click.Choice(["2:4"]),
               help="M-by-N structured sparsity (Conv2D/Dense).")
@config_option(CompressConfig, "clusters", "--clusters", type=click.IntRange(min=2), help="Clusters per layer.")
@config_option(CompressConfig, "calibration_samples", "--calibration-samples", type=click.IntRange(min=1),
               help="Representative samples for full-int8 conversion.")
@config_option(CompressConfig, "io_dtype", "--io-dtype", help="Input/output type of int8 TFLite models.")
@opt.int8_granularity(CompressConfig, help="Weight scales of post-training int8 (per-tensor: smaller files).")
@config_option(CompressConfig, "layer_plan", "--layer-plan", metavar="PLAN",
               help="ptq-mixed: default=int4,LAYER=int8,LAYER=float (names or regexes; see report.md) or a .json "
               "file. Default: int4 with the most sensitive layers at int8.")
@config_option(CompressConfig, "weight_algorithm", "--weight-algorithm",
               help="int4/int8 weight scales of the LiteRT-quantizer recipes.")
@config_option(CompressConfig, "student", "--student", type=click.Path(path_type=Path), metavar="FILE",
               help="distill: the student model (the teacher's inputs and outputs). Default: a narrower copy of "
               "the model at --student-width.")
@config_option(CompressConfig, "student_width", "--student-width", type=click.FloatRange(0, 1, min_open=True),
               help="distill: width of the narrower copy (0.5: half the channels of every hidden layer).")
@config_option(CompressConfig, "temperature", "--temperature", type=click.FloatRange(min=0, min_open=True),
               help="distill: softening of the teacher's class scores.")
@config_option(CompressConfig, "hard_label_weight", "--hard-label-weight", type=click.FloatRange(0, 1),
               help="distill: weight of the labels next to the teacher's outputs.")
@config_option(CompressConfig, "distill_epochs", "--distill-epochs", type=click.IntRange(min=1),
               help="distill: epochs of training the student.")
@config_option(CompressConfig, "distill_learning_rate", "--distill-learning-rate",
               type=click.FloatRange(min=0, min_open=True), help="distill: Adam's rate (held, then decayed over the last fifth of the steps).")
@opt.metrics(CompressConfig)
@click.option("--auto", is_flag=True, help="Search for the smallest (or fastest) variant within the budget on the "
              "driving metric (the first --metric).")
@config_option(AutoConfig, "max_accuracy_drop", "--max-accuracy-drop", type=click.FloatRange(min=0),
               help="--auto budget on accuracy, in points (the default budget is 1 point when accuracy drives).")
@config_option(AutoConfig, "max_metric_drop", "--max-metric-drop", type=click.FloatRange(min=0),
               help="--auto budget: how much worse than the original the driving metric may get, in its units "
               "(auc 0.005; logloss 0.01: an increase; accuracy in points).")
@config_option(AutoConfig, "metric_threshold", "--metric-threshold", type=float,
               help="--auto budget: a value the driving metric must reach (snr 25: at least 25 dB).")
@config_option(AutoConfig, "relative", "--relative-budget", is_flag=True,
               help="Read the drop budget as % of the original's value.")
@config_option(AutoConfig, "objective", "--objective", help="--auto: minimise gzip size or latency.")
@config_option(AutoConfig, "max_trials", "--max-trials", type=click.IntRange(min=1),
               help="--auto: at most this many candidates.")
@config_option(AutoConfig, "timeout_s", "--timeout", type=click.FloatRange(min=0, min_open=True),
               help="--auto: seconds before stopping.")
@config_option(AutoConfig, "keep_all", "--keep-all", is_flag=True, help="--auto: keep every trial's artifact.")
@config_option(AutoConfig, "jobs", "--jobs", type=click.IntRange(min=1),
               help="--auto: trials at once (capped by cores and memory).")
@config_option(AutoConfig, "trial_timeout_s", "--trial-timeout", type=click.FloatRange(min=0, min_open=True),
               help="--auto: seconds before a trial is killed and recorded as failed.")
@config_option(AutoConfig, "student_widths", "--student-widths", to_cli=opt.comma_list("{:g}".format),
               callback=opt.fraction_list, help="--auto --objective latency: widths of the distilled students tried "
               "('' for none; with --student, that model instead).")
@opt.negated_flag(CompressConfig, "isolate", "--in-process",
                  help="Make the recipes (and --auto's trials) in this process instead of fresh processes: a native "
                  "crash in TensorFlow then ends the run.")
@config_option(CompressConfig, "recipe_timeout_s", "--recipe-timeout", type=click.FloatRange(min=0, min_open=True),
               help="Seconds before a recipe is stopped and reported failed.")
@config_option(CompressConfig, "resume", "--resume", is_flag=True,
               help="Keep what an earlier run of --out made (artifact and report row); make the rest.")
@opt.output_name(CompressConfig)
@opt.select_tf_ops(CompressConfig, help="Let TFLite conversion use TensorFlow select ops for ops without a builtin "
                   "kernel (the runtime then needs the Flex delegate).")
@opt.overwrite(CompressConfig, help="Replace existing artifacts.")
@opt.as_json
@library_command
@opt.model_loading(CompressConfig)
def compress_command(auto: bool, as_json: bool, loading: Loading, **values: Any) -> None:
    """Compress MODEL with the chosen recipes and report size, accuracy and latency of each.

    Writes one artifact per recipe into --out plus report.json, report.md and report.png. Exits 1
    when a recipe failed (the report names it and why); the others are still made.
    """
    from tfdeploy.compression import auto_compress, compress

    compress_fields, auto_fields = fields_for(values, CompressConfig, AutoConfig)
    seed = global_options().seed  # each recipe starts from it (calibration samples and fine-tuning too)
    config = CompressConfig(**compress_fields, **({} if seed is None else {"seed": seed}), progress=progress(),
                            **loading.kwargs())
    if auto:
        echo_report(auto_compress(AutoConfig(config, **auto_fields)), as_json)
        return
    report = compress(config)
    echo_report(report, as_json)
    if report.failed:
        sys.exit(1)
