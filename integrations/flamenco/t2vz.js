// SPDX-License-Identifier: GPL-3.0-or-later
//
// T2V-Zero (t2vz) job type for Flamenco Manager: copy this file into the `scripts/` folder next to the
// flamenco-manager executable (the job type is then called "t2vz"). See integrations/flamenco/README.md.
//
// One job renders one shot (one contiguous frame range) with the T2V-Zero settings saved in the .blend file:
// - one task per contiguous range of frames, each running
//     blender -b -y FILE.blend -c t2vz generate --job-range S-E --frame-range A-B --output-dir DIR
//   which renders frames A-B exactly as the whole job S-E makes them, into the shared output folder (every range
//   stages privately and commits its frames atomically, so ranges on many workers, or a task run again, never mix
//   or corrupt frames). It prints a "Time: ..." line per frame, which the Worker counts as the task's progress;
// - a last task, depending on all of them, that checks every frame is there and writes preview.mp4.
//
// Ranges start on the shot's batching grid (its first frame, then every `batch_frames` frames after the anchor),
// so every frame is computed in the same batches as a single run and is bit-identical to it.

const JOB_TYPE = {
    label: "T2V-Zero Video",
    description: "Text2Video-Zero generation of the .blend file's T2V-Zero settings, one frame range per task",
    settings: [
        {
            key: "frames", type: "string", required: true,
            eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
            evalInfo: { showLinkButton: true, description: "Scene frame range" },
            description: "The shot's frames: one contiguous range such as 1-240 (T2V-Zero makes one video of them)",
        },
        {
            key: "chunk_size", type: "int32", default: 24, propargs: { min: 1 }, visible: "submission",
            description: "Frames per task (rounded up to whole batches of the scene's Chunk Size)",
        },
        {
            key: "batch_frames", type: "int32", default: 8, eval: "C.scene.t2vz.chunk_size", visible: "hidden",
            description: "The scene's T2V-Zero Chunk Size: tasks start on multiples of it (keep VAE Batch a divisor)",
        },
        {
            key: "output_dir", type: "string", subtype: "dir_path", required: true, visible: "submission",
            description: "Folder for the frames, on storage every worker can write (one folder per job)",
        },
        {
            key: "fps", type: "float", eval: "C.scene.render.fps / C.scene.render.fps_base", visible: "submission",
            description: "Frame rate of the preview video",
        },
        {
            key: "scene", type: "string", eval: "C.scene.name", visible: "web",
            description: "Scene whose T2V-Zero settings are rendered",
        },
        {
            key: "extra_args", type: "string", default: "", visible: "submission",
            description: "More 'blender -c t2vz generate' options, e.g. --seed 3 --prompt \"a fox\"",
        },
        { key: "blendfile", type: "string", required: true, visible: "web", description: "The .blend file" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const shot = parseFrameRange(settings.frames, "the job's frames");
    const batch = Math.max(1, Math.floor(settings.batch_frames || 1));
    const perTask = Math.max(batch, Math.ceil(Math.max(1, settings.chunk_size || 1) / batch) * batch);
    if (!settings.output_dir) {
        throw "t2vz: set an output folder (every worker must reach it)";
    }
    print(`t2vz: frames ${shot.first}-${shot.last}, ${perTask} per task`);

    const renderTasks = taskRanges(shot, perTask).map((range) => renderTask(settings, shot, range));
    const preview = previewTask(settings, shot);
    for (const task of renderTasks) {
        job.addTask(task);
        preview.addDependency(task);
    }
    job.addTask(preview);
}

// The first task holds the anchor (the shot's first frame) and one run of whole batches; the others start on the
// batching grid, chunked by Flamenco's own frameChunker. A chunk that is not one contiguous range is refused.
function taskRanges(shot, perTask) {
    const first = { first: shot.first, last: Math.min(shot.first + perTask, shot.last) };
    const ranges = [first];
    if (first.last < shot.last) {
        for (const chunk of frameChunker(`${first.last + 1}-${shot.last}`, perTask)) {
            ranges.push(parseFrameRange(chunk, "task chunk"));
        }
    }
    return ranges;
}

// "A-B", "A..B", "A" or "A,B" with B = A + 1 (how frameChunker writes two frames) as {first, last}; throws for
// anything else, such as "1-10,20-30": a T2V-Zero range must be one contiguous run of frames.
function parseFrameRange(text, what) {
    const spec = `${text}`.trim().replaceAll("..", "-");
    let match = spec.match(/^(-?\d+)\s*(?:-\s*(-?\d+))?$/);
    let first, last;
    if (match) {
        first = parseInt(match[1], 10);
        last = match[2] === undefined ? first : parseInt(match[2], 10);
    } else if ((match = spec.match(/^(-?\d+)\s*,\s*(-?\d+)$/)) && parseInt(match[2], 10) === parseInt(match[1], 10) + 1) {
        first = parseInt(match[1], 10);
        last = first + 1;
    } else {
        throw `t2vz: ${what} "${text}" is not one contiguous frame range (write it like 1-240)`;
    }
    if (last < first) {
        throw `t2vz: ${what} "${text}" is empty (write it as ${last}-${first})`;
    }
    return { first: first, last: last };
}

function blenderCommand(settings, blendfile, args, steps) {
    return author.Command("blender-render", {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: ["-b", "-y"],
        blendfile: blendfile,
        args: ["-c", "t2vz"].concat(args),
    }, steps);
}

function renderTask(settings, shot, range) {
    const label = `${range.first}-${range.last}`;
    const task = author.Task(`t2vz-${label}`, "blender");
    let args = [
        "generate",
        "--blend", settings.blendfile,
        "--job-range", `${shot.first}-${shot.last}`,
        "--frame-range", label,
        "--output-dir", settings.output_dir,
    ];
    if (settings.scene) {
        args = args.concat(["--scene", settings.scene]);
    }
    if (settings.extra_args) {
        args = args.concat(shellSplit(settings.extra_args));
    }
    task.addCommand(blenderCommand(settings, settings.blendfile, args, range.last - range.first + 1));
    return task;
}

function previewTask(settings, shot) {
    const task = author.Task("t2vz-preview", "blender");
    const args = [
        "assemble",
        "--output-dir", settings.output_dir,
        "--job-range", `${shot.first}-${shot.last}`,
        "--fps", `${settings.fps || 24}`,
    ];
    task.addCommand(blenderCommand(settings, "", args, 0));
    return task;
}
