// The t2vz Flamenco job type, compiled against tests/flamenco/author_harness.js (run: node --test tests/flamenco/).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const nodePath = require("node:path");
const { loadJobType } = require("./author_harness.js");

const SCRIPT = nodePath.join(__dirname, "..", "..", "integrations", "flamenco", "t2vz.js");
const SETTINGS = {
    frames: "1-50", chunk_size: 16, batch_frames: 8, output_dir: "/farm/shots/sh010/t2vz", fps: 24,
    scene: "Scene", extra_args: "--seed 3 --prompt \"a red fox\"", blendfile: "/farm/shots/sh010.blend",
};

function compile(changes = {}) {
    return loadJobType(SCRIPT).compile({ ...SETTINGS, ...changes });
}

function argsOf(task) {
    assert.equal(task.commands.length, 1);
    const command = task.commands[0];
    assert.equal(command.name, "blender-render");
    assert.deepEqual(command.parameters.argsBefore, ["-b", "-y"]);
    return command.parameters.args;
}

function option(args, name) {
    const i = args.indexOf(name);
    assert.ok(i >= 0, `${name} missing in ${args.join(" ")}`);
    return args[i + 1];
}

test("the job type declares the settings a studio sets", () => {
    const { jobType } = loadJobType(SCRIPT);
    const keys = jobType.settings.map((s) => s.key);
    for (const key of ["blendfile", "frames", "chunk_size", "output_dir", "fps"]) assert.ok(keys.includes(key), key);
    assert.equal(jobType.settings.find((s) => s.key === "output_dir").subtype, "dir_path");
});

test("one task per contiguous range, covering every frame once, on the batching grid", () => {
    const job = compile();
    const renders = job.tasks.filter((t) => t.name !== "t2vz-preview");
    const ranges = renders.map((t) => option(argsOf(t), "--frame-range").split("-").map(Number));
    assert.deepEqual(ranges, [[1, 17], [18, 33], [34, 49], [50, 50]]);
    const frames = ranges.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
    assert.deepEqual(frames, Array.from({ length: 50 }, (_, i) => i + 1));
    for (const [a] of ranges.slice(1)) assert.equal((a - 1 - 1) % 8, 0);  // job frame a-1 = 1 + k * batch
    for (const task of renders) {
        const args = argsOf(task);
        assert.deepEqual(args.slice(0, 3), ["-c", "t2vz", "generate"]);
        assert.equal(option(args, "--job-range"), "1-50");
        assert.equal(option(args, "--output-dir"), SETTINGS.output_dir);
        assert.equal(option(args, "--blend"), SETTINGS.blendfile);
        assert.equal(option(args, "--scene"), "Scene");
        assert.equal(task.commands[0].parameters.blendfile, SETTINGS.blendfile);
        assert.deepEqual(args.slice(-4), ["--seed", "3", "--prompt", "a red fox"]);
        const [a, b] = option(args, "--frame-range").split("-").map(Number);
        assert.equal(task.commands[0].totalStepCount, b - a + 1);  // one "Time:" line per frame = one step
        assert.equal(task.type, "blender");
    }
});

test("the preview task depends on every range and checks the whole shot", () => {
    const job = compile();
    const preview = job.tasks.at(-1);
    assert.equal(preview.name, "t2vz-preview");
    const renders = job.tasks.slice(0, -1);
    assert.deepEqual(new Set(preview.dependencies), new Set(renders.map((t) => t.uuid)));
    const args = argsOf(preview);
    assert.deepEqual(args.slice(0, 3), ["-c", "t2vz", "assemble"]);
    assert.equal(option(args, "--job-range"), "1-50");
    assert.equal(option(args, "--fps"), "24");
    assert.equal(preview.commands[0].parameters.blendfile, "");
});

test("task sizes round up to whole batches; two-frame chunks written A,B are one range", () => {
    const job = compile({ frames: "10-21", chunk_size: 3, batch_frames: 4 });
    const ranges = job.tasks.slice(0, -1).map((t) => option(argsOf(t), "--frame-range"));
    assert.deepEqual(ranges, ["10-14", "15-18", "19-21"]);
    const two = compile({ frames: "1-11", chunk_size: 8, batch_frames: 8 });
    assert.deepEqual(two.tasks.slice(0, -1).map((t) => option(argsOf(t), "--frame-range")), ["1-9", "10-11"]);
});

test("a shot or a chunk that is not one contiguous range is refused", () => {
    assert.throws(() => compile({ frames: "1-10,20-30" }), /not one contiguous frame range/);
    assert.throws(() => compile({ frames: "8-3" }), /is empty/);
    assert.throws(() => compile({ output_dir: "" }), /output folder/);
    const { context } = loadJobType(SCRIPT);
    assert.deepEqual({ ...context.parseFrameRange("5,6", "chunk") }, { first: 5, last: 6 });
    assert.deepEqual({ ...context.parseFrameRange("5..9", "chunk") }, { first: 5, last: 9 });
    assert.throws(() => context.parseFrameRange("1-3,5", "task chunk"), /task chunk "1-3,5" is not one contiguous/);
    assert.throws(() => context.parseFrameRange("5,7", "task chunk"), /not one contiguous/);
});
